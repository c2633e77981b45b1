import { eq, sql } from 'drizzle-orm';
import type { Schemas } from '../../api-types.js';
import type { Db } from '../../db/client.js';
import { databaseErrorOf } from '../../db/errors.js';
import { posts } from '../../db/schema/posts.js';
import { users } from '../../db/schema/users.js';

export type Post = Schemas['Post'];

export interface NewPost {
  authorId: string;
  title: string;
  content: string;
  slug: string;
}

/** The outcome of an insert: the post, or why there is none. */
export type InsertResult =
  { status: 'created'; post: Post } | { status: 'slug-taken' } | { status: 'no-author' };

/** The only code that sees rows of `posts`. It answers in the API's shape (`Post`). */
export interface PostsRepository {
  /**
   * Inserts a post unless its slug is taken. Two inserts of one slug at the same moment are
   * settled by the unique index: one is created, the other answers 'slug-taken'.
   */
  insert(data: NewPost): Promise<InsertResult>;
  findById(id: string): Promise<Post | null>;
  findBySlug(slug: string): Promise<Post | null>;
  /** Whether there was such a post. */
  delete(id: string): Promise<boolean>;
}

const FOREIGN_KEY_VIOLATION = '23503';

// The columns a Post is made of: never `search`, the tsvector nobody reads back.
const postColumns = {
  id: posts.id,
  title: posts.title,
  content: posts.content,
  slug: posts.slug,
  authorId: posts.authorId,
  viewCount: posts.viewCount,
  publishedAt: posts.publishedAt,
  createdAt: posts.createdAt,
  updatedAt: posts.updatedAt,
};

const authorColumns = {
  authorUsername: users.username,
  authorFirstName: users.firstName,
  authorLastName: users.lastName,
};

interface PostWithAuthorRow {
  id: string;
  title: string;
  content: string;
  slug: string;
  authorId: string;
  viewCount: number;
  publishedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  authorUsername: string;
  authorFirstName: string | null;
  authorLastName: string | null;
}

/** The one mapping from rows to the API's Post. */
export function toPost(row: PostWithAuthorRow): Post {
  return {
    id: row.id,
    title: row.title,
    content: row.content,
    slug: row.slug,
    authorId: row.authorId,
    author: {
      id: row.authorId,
      username: row.authorUsername,
      firstName: row.authorFirstName,
      lastName: row.authorLastName,
    },
    viewCount: row.viewCount,
    publishedAt: row.publishedAt ? row.publishedAt.toISOString() : null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export function createPostsRepository(db: Db): PostsRepository {
  // One statement per read: the post and its author's summary, joined.
  const withAuthor = () =>
    db
      .select({ ...postColumns, ...authorColumns })
      .from(posts)
      .innerJoin(users, eq(users.id, posts.authorId));
  const byId = withAuthor()
    .where(eq(posts.id, sql.placeholder('id')))
    .limit(1)
    .prepare('posts_by_id');
  const bySlug = withAuthor()
    .where(eq(posts.slug, sql.placeholder('slug')))
    .limit(1)
    .prepare('posts_by_slug');

  return {
    async insert(data) {
      // ON CONFLICT DO NOTHING rather than catching the violation: a taken slug is an
      // expected answer here (the caller tries another), not an error for the server's log.
      const inserted = db.$with('inserted').as(
        db
          .insert(posts)
          .values({
            authorId: data.authorId,
            title: data.title,
            content: data.content,
            slug: data.slug,
          })
          .onConflictDoNothing({ target: posts.slug })
          .returning(postColumns),
      );
      try {
        const [row] = await db
          .with(inserted)
          .select({
            id: inserted.id,
            title: inserted.title,
            content: inserted.content,
            slug: inserted.slug,
            authorId: inserted.authorId,
            viewCount: inserted.viewCount,
            publishedAt: inserted.publishedAt,
            createdAt: inserted.createdAt,
            updatedAt: inserted.updatedAt,
            ...authorColumns,
          })
          .from(inserted)
          .innerJoin(users, eq(users.id, inserted.authorId));
        return row ? { status: 'created', post: toPost(row) } : { status: 'slug-taken' };
      } catch (error) {
        // The author's account was deleted after the request was authenticated.
        if (databaseErrorOf(error)?.code === FOREIGN_KEY_VIOLATION) return { status: 'no-author' };
        throw error;
      }
    },

    async findById(id) {
      const [row] = await byId.execute({ id });
      return row ? toPost(row) : null;
    },

    async findBySlug(slug) {
      const [row] = await bySlug.execute({ slug });
      return row ? toPost(row) : null;
    },

    async delete(id) {
      const deleted = await db.delete(posts).where(eq(posts.id, id)).returning({ id: posts.id });
      return deleted.length > 0;
    },
  };
}
