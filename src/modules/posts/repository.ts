import { and, eq, inArray, isNotNull, isNull, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION, databaseErrorOf } from '../../db/errors.js';
import { posts } from '../../db/schema/posts.js';
import { users } from '../../db/schema/users.js';
import { preparedRows } from '../../db/statements.js';
import type { Position } from '../../lib/cursor.js';
import {
  createEventsRepository,
  type EventsRepository,
  type NewEvent,
} from '../events/repository.js';
import {
  conditionsOf,
  listQuery,
  nameOf,
  paramsOf,
  shapeOf,
  shapeQuery,
  type ListShape,
  type PostFilter,
} from './listing.js';
import {
  authorColumns,
  listColumns,
  postColumns,
  postWithAuthorColumns,
  toDeletedPost,
  toSummary,
  toUnpublishedPost,
  toVersionedPost,
  type PostSummary,
  type VersionedPost,
} from './rows.js';

export type { Post, PostSummary, VersionedPost } from './rows.js';
export type { PostFilter } from './listing.js';

export interface NewPost {
  authorId: string;
  title: string;
  content: string;
  slug: string;
}

export interface PostChanges {
  title?: string;
  content?: string;
  slug?: string;
}

/** The outcome of an insert: the post, or why there is none. */
export type InsertResult =
  { status: 'created'; post: VersionedPost } | { status: 'slug-taken' } | { status: 'no-author' };

/**
 * The outcome of a change: the post as it is now, or 'stale' (another version is there
 * now, or the post is already in the publication state asked for), 'missing' (no such
 * post any more) or, for a new slug, 'slug-taken'.
 */
export type ChangeResult =
  | { status: 'changed'; post: VersionedPost }
  | { status: 'stale' }
  | { status: 'missing' }
  | { status: 'slug-taken' };

/**
 * The owner of `posts` (src/db/owners.ts): the only code that writes it. It reads the
 * author's public columns of `users` with each post, and answers in the API's shapes.
 */
export interface PostsRepository {
  /**
   * Inserts a post unless its slug is taken. Two inserts of one slug at the same moment are
   * settled by the unique index: one is created, the other answers 'slug-taken'.
   */
  insert(data: NewPost): Promise<InsertResult>;
  findById(id: string): Promise<VersionedPost | null>;
  findBySlug(slug: string): Promise<VersionedPost | null>;
  /**
   * Applies `changes` (and `published`: true sets publishedAt to now, false clears it) in
   * one statement; the version grows by one. With a `version`, only if the post is still
   * at it; without, whatever its version. A publication (or its undoing) applies only to a
   * post that is not in that state already. Its event (post.published, post.unpublished,
   * or post.updated when the post is published) is recorded in the same transaction.
   */
  change(
    id: string,
    version: number | undefined,
    changes: PostChanges & { published?: boolean },
  ): Promise<ChangeResult>;
  /**
   * Deletes the post: if it is still at `version` when one is given. A published post's
   * deletion is recorded (post.deleted) in the same transaction; a draft's is nobody's news.
   */
  delete(id: string, version: number | undefined): Promise<'deleted' | 'stale' | 'missing'>;
  /**
   * Deletes every post of this author in `tx` (an account's deletion, before its row goes:
   * the foreign key's cascade would take them silently), recording post.deleted for each
   * published one; how many there were.
   */
  deleteAllOf(tx: Db, authorId: string): Promise<number>;
  /** Adds one view to a published post; its new count, or null when there is none. */
  recordView(id: string): Promise<number | null>;
  /**
   * Up to `limit` posts after `after`, newest first (published: by publishedAt; drafts: by
   * createdAt; then id), each with its author: one statement.
   */
  list(filter: PostFilter, limit: number, after: Position | null): Promise<PostSummary[]>;
  userExists(id: string): Promise<boolean>;
  /** The view counts of those of `ids` that are published posts (the live updates' poll). */
  publishedViewCounts(ids: readonly string[]): Promise<Map<string, number>>;
}

/**
 * The post columns of a data-modifying statement's RETURNING (a CTE of `postColumns`), to
 * select them joined with their author: the write and the read are one statement.
 */
function postColumnsOf<C extends Record<keyof typeof postColumns, unknown>>(
  returned: C,
): Pick<C, keyof typeof postColumns> {
  const picked = {} as Pick<C, keyof typeof postColumns>;
  for (const key of Object.keys(postColumns) as (keyof typeof postColumns)[]) {
    picked[key] = returned[key];
  }
  return picked;
}

export interface PostsRepositoryOptions {
  /**
   * The text search configuration of the `search` column (SEARCH_LANGUAGE; set by
   * `npm run db:search-language`, checked at start-up: db/search.ts). Queries must use the
   * same one.
   */
  searchLanguage?: string;
  /** Where publications and changes of public posts are recorded, in their transaction. */
  events?: EventsRepository;
}

/** The hottest reads, each one named statement written with Drizzle (db/statements.ts). */
function hotReads(db: Db) {
  const byColumn = (name: string, column: typeof posts.id | typeof posts.slug) =>
    preparedRows(
      db,
      name,
      db
        .select(postWithAuthorColumns)
        .from(posts)
        .innerJoin(users, eq(users.id, posts.authorId))
        .where(eq(column, sql.placeholder('key'))),
      postWithAuthorColumns,
    );
  const viewCount = { viewCount: posts.viewCount };
  return {
    byId: byColumn('posts_by_id', posts.id),
    bySlug: byColumn('posts_by_slug', posts.slug),
    view: preparedRows(
      db,
      'posts_record_view',
      db
        .update(posts)
        .set({ viewCount: sql`${posts.viewCount} + 1` })
        .where(and(eq(posts.id, sql.placeholder('id')), isNotNull(posts.publishedAt)))
        .returning(viewCount),
      viewCount,
    ),
  };
}

/** The condition of a change: the post, at `version` if given, not yet in the state asked for. */
function changeTarget(id: string, version: number | undefined, published: boolean | undefined) {
  return and(
    eq(posts.id, id),
    version === undefined ? undefined : eq(posts.version, version),
    published === undefined
      ? undefined
      : published
        ? isNull(posts.publishedAt)
        : isNotNull(posts.publishedAt),
  );
}

export function createPostsRepository(
  db: Db,
  { searchLanguage = 'simple', events = createEventsRepository() }: PostsRepositoryOptions = {},
): PostsRepository {
  // A configuration name (SEARCH_LANGUAGE's pattern: lower-case letters, digits, _), as a
  // constant: the planner then matches the query to the GIN index.
  if (!/^[a-z][a-z0-9_]*$/.test(searchLanguage)) {
    throw new Error(`Not a text search configuration name: ${searchLanguage}`);
  }
  const searchConfig = sql.raw(`'${searchLanguage}'::regconfig`);
  const reads = hotReads(db);
  // Each listing shape's statement, made on its first use.
  const shapes = new Map<string, ReturnType<typeof prepareShape>>();
  const prepareShape = (shape: ListShape) =>
    preparedRows(db, nameOf(shape), shapeQuery(db, searchConfig, shape), listColumns);
  const shapeStatement = (shape: ListShape) => {
    const name = nameOf(shape);
    let statement = shapes.get(name);
    if (!statement) {
      statement = prepareShape(shape);
      shapes.set(name, statement);
    }
    return statement;
  };

  const findById = async (id: string): Promise<VersionedPost | null> => {
    const [row] = await reads.byId({ key: id });
    return row ? toVersionedPost(row) : null;
  };
  /** Why a conditional statement touched no row: the post is gone, or at another version. */
  const missingOrStale = async (id: string) => ((await findById(id)) ? 'stale' : 'missing');

  return {
    insert: (data) => insertPost(db, data),
    findById,
    async findBySlug(slug) {
      const [row] = await reads.bySlug({ key: slug });
      return row ? toVersionedPost(row) : null;
    },
    async change(id, version, changes) {
      const changed = await changeRecorded(db, events, { id, version, changes });
      return changed ?? { status: await missingOrStale(id) };
    },
    async delete(id, version) {
      const deleted = await db.transaction((tx) =>
        deleteRecorded(tx, events, changeTarget(id, version, undefined)),
      );
      return deleted > 0 ? 'deleted' : missingOrStale(id);
    },
    deleteAllOf: (tx, authorId) => deleteRecorded(tx, events, eq(posts.authorId, authorId)),
    async recordView(id) {
      const [row] = await reads.view({ id });
      return row ? row.viewCount : null;
    },
    async publishedViewCounts(ids) {
      if (ids.length === 0) return new Map();
      const rows = await db
        .select({ id: posts.id, viewCount: posts.viewCount })
        .from(posts)
        .where(and(inArray(posts.id, [...ids]), isNotNull(posts.publishedAt)));
      return new Map(rows.map((row) => [row.id, row.viewCount]));
    },
    async list(filter, limit, after) {
      if (!Number.isInteger(limit) || limit < 1) throw new Error(`Not a page size: ${limit}`);
      const shape = shapeOf(filter, after);
      if (shape) {
        const rows = await shapeStatement(shape)(paramsOf(filter, limit, after));
        return rows.map(toSummary);
      }
      const rows = await listQuery(db, searchConfig, filter.status, {
        base: and(...conditionsOf(filter, after)),
        q: filter.q === undefined ? undefined : sql`${filter.q}`,
        limit: sql.raw(String(limit)),
      }).limit(limit);
      return rows.map(toSummary);
    },
    async userExists(id) {
      const [row] = await db.select({ id: users.id }).from(users).where(eq(users.id, id)).limit(1);
      return row !== undefined;
    },
  };
}

async function insertPost(db: Db, data: NewPost): Promise<InsertResult> {
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
      .select({ ...postColumnsOf(inserted), ...authorColumns })
      .from(inserted)
      .innerJoin(users, eq(users.id, inserted.authorId));
    return row ? { status: 'created', post: toVersionedPost(row) } : { status: 'slug-taken' };
  } catch (error) {
    // The author's account was deleted after the request was authenticated.
    if (databaseErrorOf(error)?.code === FOREIGN_KEY_VIOLATION) return { status: 'no-author' };
    throw error;
  }
}

/** The event of a change, by what it did and what the post is now; null for a draft's. */
function eventOf(post: VersionedPost['post'], published: boolean | undefined): NewEvent | null {
  const subjectId = post.id;
  if (published === true) return { type: 'post.published', subjectId, data: post };
  if (published === false) {
    return { type: 'post.unpublished', subjectId, data: toUnpublishedPost(post) };
  }
  // Whether it is public is read from the row as changed, not from an earlier read: the
  // post may have been taken back to a draft in between, and a draft's text stays private.
  return post.publishedAt === null ? null : { type: 'post.updated', subjectId, data: post };
}

/**
 * The change and its event, in one transaction (the statement alone decides whether the
 * post is public, so even a draft's change needs one); null when it touched no row.
 */
async function changeRecorded(
  db: Db,
  events: EventsRepository,
  {
    id,
    version,
    changes,
  }: { id: string; version: number | undefined; changes: PostChanges & { published?: boolean } },
): Promise<ChangeResult | null> {
  try {
    return await db.transaction(async (tx) => {
      const changed = await changePost(tx, id, version, changes);
      if (!changed) return null;
      const event = eventOf(changed.post.post, changes.published);
      if (event) await events.record(tx, event);
      return changed;
    });
  } catch (error) {
    // Caught outside the transaction, which the violation has aborted.
    const cause = databaseErrorOf(error);
    if (cause?.code === UNIQUE_VIOLATION && cause.constraint === 'posts_slug_key') {
      return { status: 'slug-taken' };
    }
    throw error;
  }
}

/**
 * Deletes the posts `where` selects, in `tx`, and records post.deleted for each published
 * one (a draft's deletion is nobody's news); how many posts went.
 */
async function deleteRecorded(tx: Db, events: EventsRepository, where: SQL | undefined) {
  const deleted = await tx
    .delete(posts)
    .where(where)
    .returning({
      id: posts.id,
      slug: posts.slug,
      authorId: posts.authorId,
      publishedAt: posts.publishedAt,
      // The transaction's time, as the event's occurred_at (milliseconds), and read as the
      // column is (Drizzle hands a bare expression's timestamp over as PostgreSQL's text).
      deletedAt: sql<Date>`now()::timestamptz(3)`.mapWith(posts.updatedAt),
    });
  await events.record(
    tx,
    ...deleted
      .filter((row) => row.publishedAt !== null)
      .map((row): NewEvent => ({
        type: 'post.deleted',
        subjectId: row.id,
        data: toDeletedPost(row),
      })),
  );
  return deleted.length;
}

/** The change and the read of its result in one statement; null when it touched no row. */
async function changePost(
  db: Db,
  id: string,
  version: number | undefined,
  { title, content, slug, published }: PostChanges & { published?: boolean },
): Promise<Extract<ChangeResult, { status: 'changed' }> | null> {
  const changed = db.$with('changed').as(
    db
      .update(posts)
      // Drizzle leaves out the undefined ones: only the fields asked for change.
      .set({
        title,
        content,
        slug,
        publishedAt: published === undefined ? undefined : published ? sql`now()` : null,
        version: sql`${posts.version} + 1`,
        updatedAt: sql`now()`,
      })
      .where(changeTarget(id, version, published))
      .returning(postColumns),
  );
  const [row] = await db
    .with(changed)
    .select({ ...postColumnsOf(changed), ...authorColumns })
    .from(changed)
    .innerJoin(users, eq(users.id, changed.authorId));
  return row ? { status: 'changed', post: toVersionedPost(row) } : null;
}
