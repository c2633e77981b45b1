import { entityTag, noneMatchHolds, showRead, versionConditionOf } from '../../http/entity-tags.js';
import type { HandlerGroup } from '../../http/handler-types.js';
import type { NotFoundError, Outcome } from '../../errors.js';
import { requirePrincipal } from '../../http/security.js';
import type { Post, VersionedPost } from './repository.js';
import type { PostsService } from './service.js';

export type PostsOperations =
  | 'createPost'
  | 'getPost'
  | 'getPostBySlug'
  | 'updatePost'
  | 'deletePost'
  | 'publishPost'
  | 'unpublishPost'
  | 'recordPostView'
  | 'listPosts'
  | 'listUserPosts';

/** Published posts may be kept by any cache, drafts only by their viewer's own client. */
function cacheControlOf(post: VersionedPost): 'public, no-cache' | 'private, no-cache' {
  return post.post.publishedAt === null ? 'private, no-cache' : 'public, no-cache';
}

const etagOf = ({ post, version }: VersionedPost) => entityTag(version, post);

const listingCacheControl = (status: string | undefined) =>
  status === 'draft' ? 'private, no-cache' : 'public, no-cache';

type CacheHeaders = { ETag: string; 'Cache-Control': ReturnType<typeof cacheControlOf> };

/**
 * What getPost and getPostBySlug have in common (they declare the same responses): the
 * request's If-None-Match, and the replies of a post found, unchanged, or missing.
 */
interface ShowPostInput<R> {
  headers: { 'If-None-Match'?: string | undefined };
  // Each operation's reply, typed for both statuses at once (a generic status over the two
  // operations does not type-check): a 304 with a body would pass here, not the tests.
  reply(status: 200 | 304, body: Post | undefined, headers: CacheHeaders): R;
  refuse(error: NotFoundError): R;
}

/**
 * A post found (or not) by getPost or getPostBySlug: 200 with its ETag, or 304 when
 * If-None-Match holds it.
 */
function showPost<R>(input: ShowPostInput<R>, found: Outcome<VersionedPost, NotFoundError>): R {
  if (!found.ok) return input.refuse(found.error);
  const cache = { ETag: etagOf(found.value), 'Cache-Control': cacheControlOf(found.value) };
  if (!noneMatchHolds(input.headers['If-None-Match'], cache.ETag)) {
    return input.reply(304, undefined, cache);
  }
  return input.reply(200, found.value.post, cache);
}

export function createPostsHandlers(service: PostsService): HandlerGroup<PostsOperations> {
  return {
    async createPost({ body, principal, reply, refuse }) {
      const created = await service.create(requirePrincipal(principal), body);
      if (!created.ok) return refuse(created.error);
      return reply(201, created.value.post, { Location: `/api/posts/${created.value.post.id}` });
    },
    // The access token is optional here: principal is null for an anonymous caller.
    async getPost(input) {
      return showPost(input, await service.get(input.principal, input.params.id));
    },
    async getPostBySlug(input) {
      return showPost(input, await service.getBySlug(input.principal, input.params.slug));
    },
    async updatePost({ params, headers, body, principal, reply, refuse }) {
      const condition = versionConditionOf(headers['If-Match']);
      const updated = await service.update(requirePrincipal(principal), params.id, body, condition);
      if (!updated.ok) return refuse(updated.error);
      return reply(200, updated.value.post, { ETag: etagOf(updated.value) });
    },
    async deletePost({ params, headers, principal, respond }) {
      const condition = versionConditionOf(headers['If-Match']);
      return respond(204, await service.remove(requirePrincipal(principal), params.id, condition));
    },
    async publishPost({ params, headers, principal, reply, refuse }) {
      const condition = versionConditionOf(headers['If-Match']);
      const published = await service.publish(requirePrincipal(principal), params.id, condition);
      if (!published.ok) return refuse(published.error);
      return reply(200, published.value.post, { ETag: etagOf(published.value) });
    },
    async unpublishPost({ params, headers, principal, reply, refuse }) {
      const condition = versionConditionOf(headers['If-Match']);
      const unpublished = await service.unpublish(
        requirePrincipal(principal),
        params.id,
        condition,
      );
      if (!unpublished.ok) return refuse(unpublished.error);
      return reply(200, unpublished.value.post, { ETag: etagOf(unpublished.value) });
    },
    async recordPostView({ params, respond }) {
      return respond(200, await service.recordView(params.id));
    },
    // A listing of drafts is its caller's own; of published posts, the same for everybody.
    async listPosts(input) {
      const found = await service.list(input.principal, input.query);
      return showRead(input, found, listingCacheControl(input.query.status));
    },
    async listUserPosts(input) {
      const { params, query, principal } = input;
      const found = await service.listByAuthor(principal, params.id, query);
      return showRead(input, found, listingCacheControl(query.status));
    },
  };
}
