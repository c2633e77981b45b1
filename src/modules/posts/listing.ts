import { and, eq, gt, isNotNull, isNull, lt, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { posts } from '../../db/schema/posts.js';
import { users } from '../../db/schema/users.js';
import type { Position } from '../../lib/cursor.js';
import { listColumns } from './rows.js';

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

/**
 * A listing without publication-time bounds: its statement has one text for every page of
 * that shape, so it is a named prepared statement (planned once per connection and shape,
 * not parsed and planned again for every request).
 */
export interface ListShape {
  status: PostFilter['status'];
  author: boolean;
  after: boolean;
  search: boolean;
}

export function shapeOf(filter: PostFilter, after: Position | null): ListShape | null {
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

export const nameOf = (shape: ListShape) =>
  `posts_list_${shape.status}${shape.author ? '_by_author' : ''}${shape.search ? '_search' : ''}${shape.after ? '_after' : ''}`;

/** The placeholders' values of a shape's statement. */
export function paramsOf(filter: PostFilter, limit: number, after: Position | null) {
  return {
    limit,
    authorId: filter.authorId,
    q: filter.q,
    afterAt: after?.at,
    afterId: after?.id,
  };
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
export function shapeConditionsOf(shape: ListShape): SQL[] {
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

/** A published listing's publication-time bounds, as conditions. */
function publicationBounds(filter: Extract<PostFilter, { status: 'published' }>): SQL[] {
  const conditions: SQL[] = [];
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
  return conditions;
}

export function conditionsOf(filter: PostFilter, after: Position | null): SQL[] {
  const conditions: SQL[] = [];
  if (filter.status === 'published') {
    conditions.push(isNotNull(posts.publishedAt));
    if (filter.authorId !== undefined) conditions.push(eq(posts.authorId, filter.authorId));
    conditions.push(...publicationBounds(filter));
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
 * A listing's statement, newest first, up to the LIMIT the caller adds; `limit` (a
 * constant or a placeholder) bounds a search's inner steps. `searchConfig` is the text
 * search configuration of the `search` column, as an SQL constant.
 */
export function listQuery(
  db: Db,
  searchConfig: SQL,
  status: PostFilter['status'],
  where: { base: SQL | undefined; q: SQL | undefined; limit: SQL },
) {
  const time = status === 'published' ? posts.publishedAt : posts.createdAt;
  const { base, q, limit } = where;
  const condition =
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
      .where(condition)
      // NULLS LAST as in the btree indexes (DESC alone means NULLS FIRST, which they cannot
      // give), so that a listing walks one in order and stops after `limit` rows.
      .orderBy(sql`${time} desc nulls last`, sql`${posts.id} desc nulls last`)
  );
}

/** A shape's statement, with placeholders for its values (see ListShape). */
export function shapeQuery(db: Db, searchConfig: SQL, shape: ListShape) {
  const limit = sql.placeholder('limit');
  return listQuery(db, searchConfig, shape.status, {
    base: and(...shapeConditionsOf(shape)),
    q: shape.search ? sql`${sql.placeholder('q')}` : undefined,
    limit: sql`${limit}`,
  }).limit(limit);
}
