import { and, eq, gt, isNotNull, isNull, lt, sql, type SQL } from 'drizzle-orm';
import type { Schemas } from '../../api-types.js';
import type { Db } from '../../db/client.js';
import { UNIQUE_VIOLATION, databaseErrorOf } from '../../db/errors.js';
import { posts } from '../../db/schema/posts.js';
import { isoOf, namedQuery, namedStatement } from '../../db/statements.js';
import { users } from '../../db/schema/users.js';
import type { Position } from '../../lib/cursor.js';

export type Post = Schemas['Post'];
export type PostSummary = Schemas['PostSummary'];

/**
 * A post and its version: a number that grows by one with every change of the post
 * (an edit, a publication), and not with a view. Conditional changes compare it.
 */
export interface VersionedPost {
  post: Post;
  version: number;
}

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

/** What a page of posts holds: published posts, or the drafts of one author. */
export type PostFilter =
  | {
      status: 'published';
      authorId?: string | undefined;
      publishedAfter?: string | undefined;
      publishedBefore?: string | undefined;
      q?: string | undefined;
    }
  | { status: 'draft'; authorId: string; q?: string | undefined };

/** The longest excerpt, in characters, before the ellipsis. */
export const EXCERPT_LENGTH = 300;

/** The only code that sees rows of `posts`. It answers in the API's shapes. */
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
   * post that is not in that state already.
   */
  change(
    id: string,
    version: number | undefined,
    changes: PostChanges & { published?: boolean },
  ): Promise<ChangeResult>;
  /** Deletes the post: if it is still at `version` when one is given. */
  delete(id: string, version: number | undefined): Promise<'deleted' | 'stale' | 'missing'>;
  /** Adds one view to a published post; its new count, or null when there is none. */
  recordView(id: string): Promise<number | null>;
  /**
   * Up to `limit` posts after `after`, newest first (published: by publishedAt; drafts: by
   * createdAt; then id), each with its author: one statement.
   */
  list(filter: PostFilter, limit: number, after: Position | null): Promise<PostSummary[]>;
  userExists(id: string): Promise<boolean>;
}

// The columns a Post is made of, with its version: never `search`, the tsvector nobody
// reads back.
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
  version: posts.version,
};

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

const authorColumns = {
  authorUsername: users.username,
  authorFirstName: users.firstName,
  authorLastName: users.lastName,
};

interface PostRow {
  id: string;
  title: string;
  slug: string;
  authorId: string;
  viewCount: number;
  // Dates from Drizzle, the API's strings from the named statements (db/statements.ts).
  publishedAt: Date | string | null;
  createdAt: Date | string;
  updatedAt: Date | string;
  authorUsername: string;
  authorFirstName: string | null;
  authorLastName: string | null;
}

function common(row: PostRow) {
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
export function toVersionedPost(
  row: PostRow & { content: string; version: number },
): VersionedPost {
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

function toSummary(row: PostRow & { head: string }): PostSummary {
  const { id, title, slug, authorId, author, viewCount, publishedAt, createdAt, updatedAt } =
    common(row);
  return {
    id,
    title,
    excerpt: excerptOf(row.head),
    slug,
    authorId,
    author,
    viewCount,
    publishedAt,
    createdAt,
    updatedAt,
  };
}

/** A listing's columns, in the order of its rows when they come as arrays. */
const listColumns = {
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
const listColumnOrder = [
  'id',
  'title',
  'head',
  'slug',
  'authorId',
  'viewCount',
  'publishedAt',
  'createdAt',
  'updatedAt',
  'authorUsername',
  'authorFirstName',
  'authorLastName',
] as const;
if (Object.keys(listColumns).join() !== listColumnOrder.join()) {
  throw new Error('posts: the listing columns and summaryOfColumns disagree');
}

/** A listing's row as an array (db/statements.ts: namedQuery), in listColumnOrder. */
function summaryOfColumns(row: unknown[]): PostSummary {
  return toSummary({
    id: row[0] as string,
    title: row[1] as string,
    head: row[2] as string,
    slug: row[3] as string,
    authorId: row[4] as string,
    viewCount: row[5] as number,
    publishedAt: row[6] as string | null,
    createdAt: row[7] as string,
    updatedAt: row[8] as string,
    authorUsername: row[9] as string,
    authorFirstName: row[10] as string | null,
    authorLastName: row[11] as string | null,
  });
}

/** The instants a timestamp is sent as (ISO 8601 with a 4-digit year): years 1 to 9999. */
const EARLIEST = Date.parse('0001-01-01T00:00:00.000Z');
const LATEST = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * The instant of an RFC 3339 date-time (which the spec's `date-time` took). A leap second
 * (hh:59:60, in UTC 23:59:60) is the second that follows it, as PostgreSQL reads it:
 * JavaScript's Date refuses it (Invalid Date, which the driver cannot send).
 */
function instantOf(dateTime: string): Date {
  const leap = /^(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:)60/.exec(dateTime);
  if (!leap) return new Date(dateTime);
  return new Date(Date.parse(`${leap[1]}59${dateTime.slice(leap[0].length)}`) + 1000);
}

/** The conditions of `conditionsOf` for a shape, with placeholders for its values. */
function shapeConditionsOf(shape: ListShape): SQL[] {
  const time = shape.status === 'published' ? posts.publishedAt : posts.createdAt;
  const conditions: SQL[] =
    shape.status === 'published'
      ? [isNotNull(posts.publishedAt)]
      : [eq(posts.authorId, sql.placeholder('authorId')), isNull(posts.publishedAt)];
  if (shape.status === 'published' && shape.author) {
    conditions.push(eq(posts.authorId, sql.placeholder('authorId')));
  }
  if (shape.after) {
    conditions.push(
      sql`(${time}, ${posts.id}) < (${sql.placeholder('afterAt')}::timestamptz, ${sql.placeholder('afterId')}::uuid)`,
    );
  }
  return conditions;
}

function conditionsOf(filter: PostFilter, after: Position | null): SQL[] {
  const conditions: SQL[] = [];
  if (filter.status === 'published') {
    conditions.push(isNotNull(posts.publishedAt));
    if (filter.authorId !== undefined) conditions.push(eq(posts.authorId, filter.authorId));
    if (filter.publishedAfter !== undefined) {
      const after = instantOf(filter.publishedAfter);
      // Every post was published within years 1 to 9999, which the driver can send.
      if (after.getTime() > LATEST) conditions.push(sql`false`);
      else if (after.getTime() >= EARLIEST) conditions.push(gt(posts.publishedAt, after));
    }
    if (filter.publishedBefore !== undefined) {
      const before = instantOf(filter.publishedBefore);
      if (before.getTime() < EARLIEST) conditions.push(sql`false`);
      else if (before.getTime() <= LATEST) conditions.push(lt(posts.publishedAt, before));
    }
    // A row comparison walks the (published_at, id) index: page 1000 costs what page 1 does.
    if (after) {
      conditions.push(
        sql`(${posts.publishedAt}, ${posts.id}) < (${after.at}::timestamptz, ${after.id}::uuid)`,
      );
    }
  } else {
    conditions.push(eq(posts.authorId, filter.authorId), isNull(posts.publishedAt));
    if (after) {
      conditions.push(
        sql`(${posts.createdAt}, ${posts.id}) < (${after.at}::timestamptz, ${after.id}::uuid)`,
      );
    }
  }
  return conditions;
}

/**
 * How many of the newest rows a search looks through in time order before it turns to the
 * GIN index (see `searchIds`).
 */
const SEARCH_WINDOW = 2000;

/**
 * The ids of one page of a search, `limit` at most, as a condition on posts.id. Neither
 * way PostgreSQL could find them costs little for every word: walking the time index and
 * testing each row stops early for a common word but reads the whole table for a rare or
 * absent one (0.5 s on 200,000 posts; the planner's guess for a word it has no statistics
 * for is far too high, so it picks that way), and the GIN index finds a rare word at once
 * but hands over every row of a common one to be sorted (0.35 s for a word in most posts).
 * So this does both, each bounded, in one statement: the newest SEARCH_WINDOW rows in time
 * order are tested first; only when they hold fewer than `limit` matches does the GIN index
 * look for the rest, among older rows, and then a word is rare (under limit/SEARCH_WINDOW
 * of the rows), so that GIN scan is short too. The gating conditions of `slow` are
 * uncorrelated subqueries: PostgreSQL evaluates them once, before that scan.
 */
function searchIds(
  base: SQL | undefined,
  time: typeof posts.publishedAt | typeof posts.createdAt,
  matches: SQL,
  count: SQL,
): SQL {
  const window = sql.raw(String(SEARCH_WINDOW));
  const where = base ? sql`${base} and` : sql``;
  return sql`${posts.id} in (
    with recent as materialized (
      select ${posts.id} as id, ${time} as at, (${matches}) as hit
        from ${posts}
       where ${base ?? sql`true`}
       order by ${time} desc nulls last, ${posts.id} desc nulls last
       limit ${window}
    ),
    fast as (select id from recent where hit order by at desc, id desc limit ${count}),
    slow as (
      select ${posts.id} as id
        from ${posts}
       where ${where} ${matches}
         and (select count(*) from recent) = ${window}
         and (select count(*) from fast) < ${count}
       order by ${time} desc nulls first, ${posts.id} desc nulls first
       limit ${count}
    )
    select id from fast union select id from slow
  )`;
}

/**
 * A listing without publication-time bounds: its statement has one text for every page of
 * that shape, so it is a named prepared statement (planned once per connection and shape,
 * not parsed and planned again for every request).
 */
interface ListShape {
  status: PostFilter['status'];
  author: boolean;
  after: boolean;
  search: boolean;
}

function shapeOf(filter: PostFilter, after: Position | null): ListShape | null {
  if (
    filter.status === 'published' &&
    (filter.publishedAfter !== undefined || filter.publishedBefore !== undefined)
  ) {
    return null;
  }
  return {
    status: filter.status,
    author: filter.authorId !== undefined,
    after: after !== null,
    search: filter.q !== undefined,
  };
}

const nameOf = (shape: ListShape) =>
  `posts_list_${shape.status}${shape.author ? '_by_author' : ''}${shape.search ? '_search' : ''}${shape.after ? '_after' : ''}`;

/** The placeholders' values of a shape's statement. */
function paramsOf(filter: PostFilter, limit: number, after: Position | null) {
  return {
    limit,
    authorId: filter.authorId,
    q: filter.q,
    afterAt: after?.at,
    afterId: after?.id,
  };
}

export interface PostsRepositoryOptions {
  /**
   * The text search configuration of the `search` column (SEARCH_LANGUAGE; the server
   * makes the column follow it at start-up, db/search.ts). Queries must use the same one.
   */
  searchLanguage?: string;
}

export function createPostsRepository(
  db: Db,
  { searchLanguage = 'simple' }: PostsRepositoryOptions = {},
): PostsRepository {
  // A configuration name (SEARCH_LANGUAGE's pattern: lower-case letters, digits, _), as a
  // constant: the planner then matches the query to the GIN index.
  if (!/^[a-z][a-z0-9_]*$/.test(searchLanguage)) {
    throw new Error(`Not a text search configuration name: ${searchLanguage}`);
  }
  const searchConfig = sql.raw(`'${searchLanguage}'::regconfig`);
  // The reads of one post and the view count, the hottest statements of posts: written
  // out and sent by name (src/db/statements.ts); they return rows in PostRow's shape.
  const postWithAuthor = (column: 'id' | 'slug') =>
    `select p.id, p.title, p.content, p.slug, p.author_id as "authorId",
       p.view_count as "viewCount", p.published_at as "publishedAt",
       p.created_at as "createdAt", p.updated_at as "updatedAt", p.version,
       u.username as "authorUsername", u.first_name as "authorFirstName",
       u.last_name as "authorLastName"
     from posts p join users u on u.id = p.author_id
     where p.${column} = $1`;
  type FullRow = PostRow & { content: string; version: number };
  const byId = namedStatement<FullRow>(db, 'posts_by_id', postWithAuthor('id'));
  const bySlug = namedStatement<FullRow>(db, 'posts_by_slug', postWithAuthor('slug'));
  const view = namedStatement<{ viewCount: number }>(
    db,
    'posts_record_view',
    `update posts set view_count = view_count + 1
     where id = $1 and published_at is not null
     returning view_count as "viewCount"`,
  );

  /**
   * A listing's statement, newest first, up to the LIMIT the caller adds; `limit` (a
   * constant or a placeholder) bounds a search's inner steps.
   */
  function listQuery(
    status: PostFilter['status'],
    base: SQL | undefined,
    q: SQL | undefined,
    limit: SQL,
  ) {
    const time = status === 'published' ? posts.publishedAt : posts.createdAt;
    const where =
      q === undefined
        ? base
        : searchIds(
            base,
            time,
            sql`${posts.search} @@ websearch_to_tsquery(${searchConfig}, ${q})`,
            limit,
          );
    return (
      db
        .select(listColumns)
        .from(posts)
        .innerJoin(users, eq(users.id, posts.authorId))
        .where(where)
        // NULLS LAST as in the btree indexes (DESC alone means NULLS FIRST, which they cannot
        // give), so that a listing walks one in order and stops after `limit` rows.
        .orderBy(sql`${time} desc nulls last`, sql`${posts.id} desc nulls last`)
    );
  }

  // Each shape's statement, written by Drizzle once and then sent by name without its
  // session (db/statements.ts): a page maps 20 rows, and Drizzle's mapping of them was the
  // largest cost of a listing after the excerpts.
  const preparedLists = new Map<string, ReturnType<typeof namedQuery>>();
  function prepareList(shape: ListShape, name: string) {
    const limit = sql.placeholder('limit');
    const query = listQuery(
      shape.status,
      and(...shapeConditionsOf(shape)),
      shape.search ? sql`${sql.placeholder('q')}` : undefined,
      sql`${limit}`,
    ).limit(limit);
    return namedQuery(db, name, query);
  }
  function preparedList(shape: ListShape) {
    const name = nameOf(shape);
    let statement = preparedLists.get(name);
    if (!statement) {
      statement = prepareList(shape, name);
      preparedLists.set(name, statement);
    }
    return statement;
  }

  async function findById(id: string): Promise<VersionedPost | null> {
    const [row] = await byId([id]);
    return row ? toVersionedPost(row) : null;
  }

  /** Why a conditional statement touched no row: the post is gone, or at another version. */
  async function missingOrStale(id: string): Promise<'missing' | 'stale'> {
    return (await findById(id)) ? 'stale' : 'missing';
  }

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
          .select({ ...postColumnsOf(inserted), ...authorColumns })
          .from(inserted)
          .innerJoin(users, eq(users.id, inserted.authorId));
        return row ? { status: 'created', post: toVersionedPost(row) } : { status: 'slug-taken' };
      } catch (error) {
        // The author's account was deleted after the request was authenticated.
        if (databaseErrorOf(error)?.code === FOREIGN_KEY_VIOLATION) return { status: 'no-author' };
        throw error;
      }
    },

    findById,

    async findBySlug(slug) {
      const [row] = await bySlug([slug]);
      return row ? toVersionedPost(row) : null;
    },

    async change(id, version, { published, ...changes }) {
      const changed = db.$with('changed').as(
        db
          .update(posts)
          .set({
            ...changes,
            ...(published === undefined ? {} : { publishedAt: published ? sql`now()` : null }),
            version: sql`${posts.version} + 1`,
            updatedAt: sql`now()`,
          })
          .where(
            and(
              eq(posts.id, id),
              version === undefined ? undefined : eq(posts.version, version),
              published === undefined
                ? undefined
                : published
                  ? isNull(posts.publishedAt)
                  : isNotNull(posts.publishedAt),
            ),
          )
          .returning(postColumns),
      );
      try {
        const [row] = await db
          .with(changed)
          .select({ ...postColumnsOf(changed), ...authorColumns })
          .from(changed)
          .innerJoin(users, eq(users.id, changed.authorId));
        if (row) return { status: 'changed', post: toVersionedPost(row) };
        return { status: await missingOrStale(id) };
      } catch (error) {
        const cause = databaseErrorOf(error);
        if (cause?.code === UNIQUE_VIOLATION && cause.constraint === 'posts_slug_key') {
          return { status: 'slug-taken' };
        }
        throw error;
      }
    },

    async delete(id, version) {
      const deleted = await db
        .delete(posts)
        .where(
          and(eq(posts.id, id), version === undefined ? undefined : eq(posts.version, version)),
        )
        .returning({ id: posts.id });
      return deleted.length > 0 ? 'deleted' : missingOrStale(id);
    },

    async recordView(id) {
      const [row] = await view([id]);
      return row ? row.viewCount : null;
    },

    async list(filter, limit, after) {
      if (!Number.isInteger(limit) || limit < 1) throw new Error(`Not a page size: ${limit}`);
      const shape = shapeOf(filter, after);
      if (shape) {
        const rows = await preparedList(shape)(paramsOf(filter, limit, after));
        return rows.map(summaryOfColumns);
      }
      const rows = await listQuery(
        filter.status,
        and(...conditionsOf(filter, after)),
        filter.q === undefined ? undefined : sql`${filter.q}`,
        sql.raw(String(limit)),
      ).limit(limit);
      return rows.map(toSummary);
    },

    async userExists(id) {
      const [row] = await db.select({ id: users.id }).from(users).where(eq(users.id, id)).limit(1);
      return row !== undefined;
    },
  };
}

const FOREIGN_KEY_VIOLATION = '23503';
