import { entityTag, noneMatchHolds, versionConditionOf } from '../../http/entity-tags.js';
import type { HandlerGroup } from '../../http/handler-types.js';
import { requirePrincipal } from '../../http/security.js';
import type { VersionedPost } from './repository.js';
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

export function createPostsHandlers(service: PostsService): HandlerGroup<PostsOperations> {
  return {
    async createPost({ body, principal, reply, refuse }) {
      const created = await service.create(requirePrincipal(principal), body);
      if (!created.ok) return refuse(created.error);
      return reply(201, created.value.post, { Location: `/api/posts/${created.value.post.id}` });
    },
    // The access token is optional here: principal is null for an anonymous caller.
    async getPost({ params, headers, principal, reply, refuse }) {
      const found = await service.get(principal, params.id);
      if (!found.ok) return refuse(found.error);
      const cache = { ETag: etagOf(found.value), 'Cache-Control': cacheControlOf(found.value) };
      if (!noneMatchHolds(headers['If-None-Match'], cache.ETag)) {
        return reply(304, undefined, cache);
      }
      return reply(200, found.value.post, cache);
    },
    async getPostBySlug({ params, headers, principal, reply, refuse }) {
      const found = await service.getBySlug(principal, params.slug);
      if (!found.ok) return refuse(found.error);
      const cache = { ETag: etagOf(found.value), 'Cache-Control': cacheControlOf(found.value) };
      if (!noneMatchHolds(headers['If-None-Match'], cache.ETag)) {
        return reply(304, undefined, cache);
      }
      return reply(200, found.value.post, cache);
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
    async listPosts({ query, principal, respond }) {
      return respond(200, await service.list(principal, query));
    },
    async listUserPosts({ params, query, principal, respond }) {
      return respond(200, await service.listByAuthor(principal, params.id, query));
    },
  };
}
