import { sql } from 'drizzle-orm';
import {
  customType,
  index,
  integer,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
  varchar,
} from 'drizzle-orm/pg-core';
import { timestamps, users } from './users.js';

/** PostgreSQL's tsvector: written only by the database (a generated column), never read back. */
const tsvector = customType<{ data: string }>({
  dataType: () => 'tsvector',
});

/**
 * Posts: a draft until `published_at` is set. `version` grows by one on every change, for
 * If-Match; `search` is the full-text index of title and content, kept by the database.
 */
export const posts = pgTable(
  'posts',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    authorId: uuid('author_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    title: varchar('title', { length: 200 }).notNull(),
    content: text('content').notNull(),
    slug: varchar('slug', { length: 255 }).notNull(),
    viewCount: integer('view_count').notNull().default(0),
    /** Null: a draft. */
    publishedAt: timestamp('published_at', { withTimezone: true, precision: 3 }),
    ...timestamps,
    version: integer('version').notNull().default(1),
    // 'simple': no stemming or stop words, so it works for every language the same way.
    search: tsvector('search')
      .notNull()
      .generatedAlwaysAs(sql`to_tsvector('simple'::regconfig, "title"::text || ' ' || "content")`),
  },
  (table) => [
    uniqueIndex('posts_slug_key').on(table.slug),
    // The published listing, newest first (keyset on published_at, id).
    index('posts_published_at_id_idx')
      .on(table.publishedAt.desc(), table.id.desc())
      .where(sql`${table.publishedAt} is not null`),
    // One author's published posts, newest first (listUserPosts, listPosts?authorId=).
    index('posts_author_published_at_id_idx')
      .on(table.authorId, table.publishedAt.desc(), table.id.desc())
      .where(sql`${table.publishedAt} is not null`),
    // An author's posts, drafts included, newest first.
    index('posts_author_created_at_id_idx').on(
      table.authorId,
      table.createdAt.desc(),
      table.id.desc(),
    ),
    index('posts_search_idx').using('gin', table.search),
  ],
);

export type PostRow = typeof posts.$inferSelect;

/** Which unique index guards which API field, to turn a violation into a 409 on that field. */
export const postUniqueFields: Record<string, 'slug'> = {
  posts_slug_key: 'slug',
};
