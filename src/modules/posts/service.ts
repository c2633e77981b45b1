import type { Schemas } from '../../api-types.js';
import {
  ChangedMeanwhileError,
  ConflictError,
  ForbiddenError,
  InvalidInputError,
  NotFoundError,
  UnauthenticatedError,
  fail,
  ok,
  type Outcome,
} from '../../errors.js';
import type { Changes } from '../../lib/changes.js';
import { encodeCursor, positionOf } from '../../lib/cursor.js';
import type { Principal } from '../../lib/principal.js';
import { baseSlug, slugCandidates } from '../../lib/slug.js';
import type {
  ChangeResult,
  PostChanges,
  PostFilter,
  PostSummary,
  PostsRepository,
  VersionedPost,
} from './repository.js';

export type CreatePostInput = Schemas['CreatePostRequest'];
export type UpdatePostInput = Schemas['UpdatePostRequest'];
export type PostPage = Schemas['PostPage'];

/**
 * What a conditional request (If-Match) asks: that the post still be at one of these
 * versions. Absent: no condition, the last change wins.
 */
export type VersionCondition = (version: number) => boolean;

/** A page request of posts, as listPosts and listUserPosts take it. */
export interface ListInput {
  limit?: number | undefined;
  cursor?: string | undefined;
  authorId?: string | undefined;
  publishedAfter?: string | undefined;
  publishedBefore?: string | undefined;
  q?: string | undefined;
  status?: 'published' | 'draft' | undefined;
}

type ChangeError = NotFoundError | ForbiddenError | ChangedMeanwhileError;

export interface PostsService {
  /** A draft of the caller's; its slug made from the title unless one is given. */
  create(
    principal: Principal,
    input: CreatePostInput,
  ): Promise<Outcome<VersionedPost, ConflictError | UnauthenticatedError>>;
  /** `viewer` is null for an anonymous caller. */
  get(viewer: Principal | null, id: string): Promise<Outcome<VersionedPost, NotFoundError>>;
  getBySlug(viewer: Principal | null, slug: string): Promise<Outcome<VersionedPost, NotFoundError>>;
  update(
    principal: Principal,
    id: string,
    changes: UpdatePostInput,
    condition?: VersionCondition,
  ): Promise<Outcome<VersionedPost, ChangeError | ConflictError>>;
  publish(
    principal: Principal,
    id: string,
    condition?: VersionCondition,
  ): Promise<Outcome<VersionedPost, ChangeError>>;
  unpublish(
    principal: Principal,
    id: string,
    condition?: VersionCondition,
  ): Promise<Outcome<VersionedPost, ChangeError>>;
  remove(
    principal: Principal,
    id: string,
    condition?: VersionCondition,
  ): Promise<Outcome<undefined, ChangeError>>;
  recordView(id: string): Promise<Outcome<{ viewCount: number }, NotFoundError>>;
  /** The view counts of those of `ids` that are published (drafts have none to show). */
  publishedViewCounts(ids: readonly string[]): Promise<Map<string, number>>;
  /** listPosts: `viewer` is null for an anonymous caller. */
  list(
    viewer: Principal | null,
    input: ListInput,
  ): Promise<Outcome<PostPage, InvalidInputError | UnauthenticatedError | ForbiddenError>>;
  /** listUserPosts: as `list` for one author, and NOT_FOUND when there is no such user. */
  listByAuthor(
    viewer: Principal | null,
    authorId: string,
    input: Omit<ListInput, 'authorId'>,
  ): Promise<
    Outcome<PostPage, InvalidInputError | UnauthenticatedError | ForbiddenError | NotFoundError>
  >;
}

/**
 * How many slugs a post made without one tries. After the base, each has a random
 * six-character suffix (36^6 ≈ 2·10^9 of them): a second collision is already unlikely.
 */
const SLUG_ATTEMPTS = 10;

const DEFAULT_PAGE_SIZE = 20;

function canManage(principal: Principal, post: VersionedPost): boolean {
  return principal.role === 'admin' || post.post.authorId === principal.userId;
}

/** Drafts exist only for their author and admins; to anybody else they are not found. */
function canSee(viewer: Principal | null, post: VersionedPost): boolean {
  return post.post.publishedAt !== null || (viewer !== null && canManage(viewer, post));
}

const noAuthor = () =>
  new UnauthenticatedError('The account of this access token no longer exists.');
const notFound = () => new NotFoundError('Post');
const slugTaken = () => new ConflictError('This slug is already taken.', 'slug');

type Step =
  { kind: 'change'; changes: PostChanges & { published?: boolean } } | { kind: 'unchanged' };

function visible(
  viewer: Principal | null,
  post: VersionedPost | null,
): Outcome<VersionedPost, NotFoundError> {
  return post && canSee(viewer, post) ? ok(post) : fail(notFound());
}

/** What readers saw of a post before a change and see after it (null: no post). */
function postChange(before: VersionedPost, after: VersionedPost | null) {
  const slugs = [before.post.slug];
  if (after && after.post.slug !== before.post.slug) slugs.push(after.post.slug);
  const listed = before.post.publishedAt !== null || (after?.post.publishedAt ?? null) !== null;
  return { kind: 'post', id: before.post.id, slugs, listed } as const;
}

interface PostsDeps {
  posts: PostsRepository;
  changes: Changes;
}

/**
 * The frame of every change: read the post, check who may change it and the caller's
 * condition, then change it. A conditional change is made only if the post is still at
 * the version read, and fails (412) when it is not; an unconditional one is made
 * whatever the version: the last change wins. (Who may change a post does not depend on
 * its version: its author never changes.) `slugTaken` is the error of a new slug that
 * another post has: a change that sets no slug passes one that never returns, and its
 * outcome then has no ConflictError.
 */
async function changePost<E extends ConflictError>(
  { posts, changes }: PostsDeps,
  request: { principal: Principal; id: string; condition: VersionCondition | undefined },
  forbidden: string,
  step: (post: VersionedPost) => Step,
  slugTaken: () => E,
): Promise<Outcome<VersionedPost, ChangeError | E>> {
  const { principal, id, condition } = request;
  const current = await posts.findById(id);
  if (!current || !canSee(principal, current)) return fail(notFound());
  if (!canManage(principal, current)) return fail(new ForbiddenError(forbidden));
  if (condition && !condition(current.version)) {
    return fail(new ChangedMeanwhileError('Post'));
  }
  const next = step(current);
  if (next.kind === 'unchanged') return ok(current);
  const version = condition ? current.version : undefined;
  const result: ChangeResult = await posts.change(id, version, next.changes);
  switch (result.status) {
    case 'changed':
      await changes.changed(postChange(current, result.post));
      return ok(result.post);
    case 'missing':
      return fail(notFound());
    case 'slug-taken':
      return fail(slugTaken());
    case 'stale': {
      if (condition) return fail(new ChangedMeanwhileError('Post'));
      // Without a condition only a publication (or its undoing) is stale: another request
      // put the post in the state asked for meanwhile, and it is left as it is.
      const now = await posts.findById(id);
      return now ? ok(now) : fail(notFound());
    }
  }
}

/** publishPost and unpublishPost: a post already in the state asked for is left as it is. */
function setPublished(
  deps: PostsDeps,
  request: { principal: Principal; id: string; condition: VersionCondition | undefined },
  published: boolean,
): Promise<Outcome<VersionedPost, ChangeError>> {
  const verb = published ? 'publish' : 'unpublish';
  return changePost(
    deps,
    request,
    `You can only ${verb} your own posts.`,
    (current) =>
      (current.post.publishedAt !== null) === published
        ? { kind: 'unchanged' }
        : { kind: 'change', changes: { published } },
    () => {
      throw new Error('A publication changes no slug, yet the slug was taken.');
    },
  );
}

async function page(
  posts: PostsRepository,
  filter: PostFilter,
  input: ListInput,
): Promise<Outcome<PostPage, InvalidInputError>> {
  const { limit = DEFAULT_PAGE_SIZE, cursor } = input;
  const start = positionOf(cursor);
  if (!start.ok) return start;
  const after = start.value;
  // One extra row tells whether there is a next page without a count query.
  const rows = await posts.list(filter, limit + 1, after);
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  const nextCursor =
    rows.length > limit && last
      ? encodeCursor({
          at: filter.status === 'published' ? last.publishedAt! : last.createdAt,
          id: last.id,
        })
      : null;
  return ok({ items, nextCursor });
}

/** The filter a listing asks for, or why the caller may not have it. */
function filterOf(
  viewer: Principal | null,
  input: ListInput,
): Outcome<PostFilter, InvalidInputError | UnauthenticatedError | ForbiddenError> {
  const { authorId, publishedAfter, publishedBefore, q } = input;
  if (input.status !== 'draft') {
    return ok({ status: 'published', authorId, publishedAfter, publishedBefore, q });
  }
  for (const [field, value] of [
    ['publishedAfter', publishedAfter],
    ['publishedBefore', publishedBefore],
  ] as const) {
    if (value !== undefined) {
      return fail(
        new InvalidInputError(
          field,
          'applies to published posts only',
          `${field} cannot be combined with status=draft: drafts have no publication time.`,
        ),
      );
    }
  }
  if (!viewer) return fail(new UnauthenticatedError('Sign in to list your drafts.'));
  const author = authorId ?? viewer.userId;
  if (author !== viewer.userId && viewer.role !== 'admin') {
    return fail(new ForbiddenError('You can only list your own drafts.'));
  }
  return ok({ status: 'draft', authorId: author, q });
}

/** A draft of the caller's; its slug made from the title unless one is given. */
async function createPost(
  posts: PostsRepository,
  principal: Principal,
  { title, content, slug }: CreatePostInput,
): Promise<Outcome<VersionedPost, ConflictError | UnauthenticatedError>> {
  const data = { authorId: principal.userId, title, content };
  if (slug !== undefined) {
    const inserted = await posts.insert({ ...data, slug });
    if (inserted.status === 'created') return ok(inserted.post);
    if (inserted.status === 'no-author') return fail(noAuthor());
    return fail(slugTaken());
  }
  for (const candidate of slugCandidates(baseSlug(title), SLUG_ATTEMPTS)) {
    const inserted = await posts.insert({ ...data, slug: candidate });
    if (inserted.status === 'created') return ok(inserted.post);
    if (inserted.status === 'no-author') return fail(noAuthor());
  }
  // Ten taken slugs in a row, nine of them random: the random source is broken.
  throw new Error(`No free slug for the title after ${SLUG_ATTEMPTS} attempts.`);
}

export function createPostsService(deps: PostsDeps): PostsService {
  const { posts, changes } = deps;
  return {
    create: (principal, input) => createPost(posts, principal, input),

    async get(viewer, id) {
      return visible(viewer, await posts.findById(id));
    },

    async getBySlug(viewer, slug) {
      return visible(viewer, await posts.findBySlug(slug));
    },

    update(principal, id, { title, content, slug }, condition) {
      return changePost(
        deps,
        { principal, id, condition },
        'You can only change your own posts.',
        () => ({ kind: 'change', changes: { title, content, slug } }),
        slugTaken,
      );
    },

    publish: (principal, id, condition) => setPublished(deps, { principal, id, condition }, true),

    unpublish: (principal, id, condition) =>
      setPublished(deps, { principal, id, condition }, false),

    async remove(principal, id, condition) {
      const current = await posts.findById(id);
      if (!current || !canSee(principal, current)) return fail(notFound());
      if (!canManage(principal, current)) {
        return fail(new ForbiddenError('You can only delete your own posts.'));
      }
      if (condition && !condition(current.version)) {
        return fail(new ChangedMeanwhileError('Post'));
      }
      const deleted = await posts.delete(id, condition ? current.version : undefined);
      if (deleted === 'deleted') {
        await changes.changed(postChange(current, null));
        return ok(undefined);
      }
      // Deleted meanwhile by somebody else: it is gone either way.
      if (deleted === 'missing') return fail(notFound());
      return fail(new ChangedMeanwhileError('Post'));
    },

    async recordView(id) {
      const viewCount = await posts.recordView(id);
      if (viewCount === null) return fail(notFound());
      await changes.changed({ kind: 'view', id });
      return ok({ viewCount });
    },

    publishedViewCounts: (ids) => posts.publishedViewCounts(ids),

    async list(viewer, input) {
      const filter = filterOf(viewer, input);
      return filter.ok ? page(posts, filter.value, input) : filter;
    },

    async listByAuthor(viewer, authorId, input) {
      const filter = filterOf(viewer, { ...input, authorId });
      if (!filter.ok) {
        // A draft listing of nobody is a 404 like any other listing of nobody.
        if (filter.error.code === 'FORBIDDEN' && !(await posts.userExists(authorId))) {
          return fail(new NotFoundError('User'));
        }
        return filter;
      }
      const listed = await page(posts, filter.value, input);
      // An empty page: is there such a user at all? (The only second statement.)
      if (listed.ok && listed.value.items.length === 0 && !(await posts.userExists(authorId))) {
        return fail(new NotFoundError('User'));
      }
      return listed;
    },
  };
}

export type { PostSummary };
