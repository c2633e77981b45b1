import type { Schemas } from '../../api-types.js';
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  UnauthenticatedError,
  fail,
  ok,
  type Outcome,
} from '../../errors.js';
import type { Principal } from '../../lib/principal.js';
import { baseSlug, slugCandidates } from '../../lib/slug.js';
import type { Post, PostsRepository } from './repository.js';

export type CreatePostInput = Schemas['CreatePostRequest'];

export interface PostsService {
  /** A draft of the caller's; its slug made from the title unless one is given. */
  create(
    principal: Principal,
    input: CreatePostInput,
  ): Promise<Outcome<Post, ConflictError | UnauthenticatedError>>;
  /** `viewer` is null for an anonymous caller. */
  get(viewer: Principal | null, id: string): Promise<Outcome<Post, NotFoundError>>;
  getBySlug(viewer: Principal | null, slug: string): Promise<Outcome<Post, NotFoundError>>;
  remove(
    principal: Principal,
    id: string,
  ): Promise<Outcome<undefined, ForbiddenError | NotFoundError>>;
}

/**
 * How many slugs a post made without one tries. After the base, each has a random
 * six-character suffix (36^6 ≈ 2·10^9 of them): a second collision is already unlikely.
 */
const SLUG_ATTEMPTS = 10;

function canManage(principal: Principal, post: Post): boolean {
  return principal.role === 'admin' || post.authorId === principal.userId;
}

/** Drafts exist only for their author and admins; to anybody else they are not found. */
function canSee(viewer: Principal | null, post: Post): boolean {
  return post.publishedAt !== null || (viewer !== null && canManage(viewer, post));
}

const noAuthor = () =>
  new UnauthenticatedError('The account of this access token no longer exists.');

export function createPostsService(deps: { posts: PostsRepository }): PostsService {
  const { posts } = deps;

  function visible(viewer: Principal | null, post: Post | null): Outcome<Post, NotFoundError> {
    return post && canSee(viewer, post) ? ok(post) : fail(new NotFoundError('Post'));
  }

  return {
    async create(principal, { title, content, slug }) {
      const data = { authorId: principal.userId, title, content };
      if (slug !== undefined) {
        const inserted = await posts.insert({ ...data, slug });
        if (inserted.status === 'created') return ok(inserted.post);
        if (inserted.status === 'no-author') return fail(noAuthor());
        return fail(new ConflictError('This slug is already taken.', 'slug'));
      }
      for (const candidate of slugCandidates(baseSlug(title), SLUG_ATTEMPTS)) {
        const inserted = await posts.insert({ ...data, slug: candidate });
        if (inserted.status === 'created') return ok(inserted.post);
        if (inserted.status === 'no-author') return fail(noAuthor());
      }
      // Ten taken slugs in a row, nine of them random: the random source is broken.
      throw new Error(`No free slug for the title after ${SLUG_ATTEMPTS} attempts.`);
    },

    async get(viewer, id) {
      return visible(viewer, await posts.findById(id));
    },

    async getBySlug(viewer, slug) {
      return visible(viewer, await posts.findBySlug(slug));
    },

    async remove(principal, id) {
      const post = await posts.findById(id);
      if (!post || !canSee(principal, post)) return fail(new NotFoundError('Post'));
      if (!canManage(principal, post)) {
        return fail(new ForbiddenError('You can only delete your own posts.'));
      }
      // Deleted meanwhile by somebody else: it is gone either way.
      return (await posts.delete(id)) ? ok(undefined) : fail(new NotFoundError('Post'));
    },
  };
}
