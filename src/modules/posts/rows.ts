import { sql, type Column, type SQL } from 'drizzle-orm';
import type { Schemas } from '../../api-types.js';
import { posts } from '../../db/schema/posts.js';
import { users } from '../../db/schema/users.js';
import { isoOf, type EitherRow } from '../../db/statements.js';

export type Post = Schemas['Post'];
export type PostSummary = Schemas['PostSummary'];
/** What post.unpublished and post.deleted tell: what was public, never the content. */
export type UnpublishedPost = Schemas['UnpublishedPost'];
export type DeletedPost = Schemas['DeletedPost'];

/**
 * A post and its version: a number that grows by one with every change of the post
 * (an edit, a publication), and not with a view. Conditional changes compare it.
 */
export interface VersionedPost {
  post: Post;
  version: number;
}

/** The longest excerpt, in characters, before the ellipsis. */
export const EXCERPT_LENGTH = 300;

// The columns a Post is made of, with its version: never `search`, the tsvector nobody
// reads back.
export const postColumns = {
  id: posts.id,
  title: posts.title,
  content: posts.content,
  slug: posts.slug,
  authorId: posts.authorId,
  viewCount: posts.viewCount,
  publishedAt: posts.publishedAt,
  createdAt: posts.createdAt,
  updatedAt: posts.updatedAt,
  version: posts.version,
};

/** The author's public columns, read with the post (`users` is read here, never written). */
export const authorColumns = {
  authorUsername: users.username,
  authorFirstName: users.firstName,
  authorLastName: users.lastName,
};

/** A post with its author, as getPost and every change answer it. */
export const postWithAuthorColumns = { ...postColumns, ...authorColumns };

/** A listing's columns: the content's start instead of the content. */
export const listColumns = {
  id: posts.id,
  title: posts.title,
  // One character more than an excerpt holds, to know whether it was cut.
  head: sql<string>`left(${posts.content}, ${EXCERPT_LENGTH + 1})`,
  slug: posts.slug,
  authorId: posts.authorId,
  viewCount: posts.viewCount,
  publishedAt: posts.publishedAt,
  createdAt: posts.createdAt,
  updatedAt: posts.updatedAt,
  ...authorColumns,
};

/** The row type of a flat selection of the schema's columns and typed expressions. */
type RowOf<Fields> = {
  [K in keyof Fields]: Fields[K] extends Column
    ? Fields[K]['_']['notNull'] extends true
      ? Fields[K]['_']['data']
      : Fields[K]['_']['data'] | null
    : Fields[K] extends SQL<infer T>
      ? T
      : never;
};

export type PostRow = EitherRow<RowOf<typeof postWithAuthorColumns>>;
export type ListRow = EitherRow<RowOf<typeof listColumns>>;

function common(row: PostRow | ListRow) {
  return {
    id: row.id,
    title: row.title,
    slug: row.slug,
    authorId: row.authorId,
    author: {
      id: row.authorId,
      username: row.authorUsername,
      firstName: row.authorFirstName,
      lastName: row.authorLastName,
    },
    viewCount: row.viewCount,
    publishedAt: row.publishedAt === null ? null : isoOf(row.publishedAt),
    createdAt: isoOf(row.createdAt),
    updatedAt: isoOf(row.updatedAt),
  };
}

/** The one mapping from rows to the API's Post (and its version). */
export function toVersionedPost(row: PostRow): VersionedPost {
  const { id, title, slug, authorId, author, viewCount, publishedAt, createdAt, updatedAt } =
    common(row);
  return {
    post: {
      id,
      title,
      content: row.content,
      slug,
      authorId,
      author,
      viewCount,
      publishedAt,
      createdAt,
      updatedAt,
    },
    version: row.version,
  };
}

/**
 * The start of a content for a list: up to EXCERPT_LENGTH characters, cut after the last
 * whole word and ended with an ellipsis when the content is longer. `head` holds one
 * character more than the excerpt can, to tell whether there is more.
 */
export function excerptOf(head: string): string {
  const chars = Array.from(head);
  if (chars.length <= EXCERPT_LENGTH) return head;
  const cut = chars.slice(0, EXCERPT_LENGTH).join('');
  const atWord = cut.replace(/\s+\S*$/u, '');
  return `${(atWord.length > 0 ? atWord : cut).trimEnd()}…`;
}

/** The one mapping from a listing's rows to the API's PostSummary. */
export function toSummary(row: ListRow): PostSummary {
  return summaryWith(common(row), row.head);
}

/** A whole post's summary, as a listing of it would show it (its excerpt from its content). */
export function summaryOf(post: Post): PostSummary {
  return summaryWith(
    post,
    Array.from(post.content)
      .slice(0, EXCERPT_LENGTH + 1)
      .join(''),
  );
}

function summaryWith(post: Omit<Post, 'content'>, head: string): PostSummary {
  const { id, title, slug, authorId, author, viewCount, publishedAt, createdAt, updatedAt } = post;
  return {
    id,
    title,
    excerpt: excerptOf(head),
    slug,
    authorId,
    author,
    viewCount,
    publishedAt,
    createdAt,
    updatedAt,
  };
}

/** The one mapping from a post just taken back to a draft to post.unpublished's data. */
export function toUnpublishedPost(post: Post): UnpublishedPost {
  // The unpublication is the post's last change: its updatedAt is its time.
  return { id: post.id, slug: post.slug, authorId: post.authorId, unpublishedAt: post.updatedAt };
}

/** The one mapping from a deleted post's row to post.deleted's data. */
export function toDeletedPost(row: {
  id: string;
  slug: string;
  authorId: string;
  deletedAt: Date | string;
}): DeletedPost {
  return { id: row.id, slug: row.slug, authorId: row.authorId, deletedAt: isoOf(row.deletedAt) };
}
