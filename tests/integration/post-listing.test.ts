import { sql, type SQL } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import type { components } from '../../generated/api.js';
import { signUpAndLogin, useTestApp } from '../helpers/app.js';
import { expectProblem, expectValidationError } from '../helpers/problems.js';
import { unique } from '../helpers/values.js';

type Post = components['schemas']['Post'];
type PostSummary = components['schemas']['PostSummary'];
type PostPage = components['schemas']['PostPage'];
type Headers = Record<string, string>;
type Query = Record<string, string | number>;

/** A statement the app ran: its text and parameters, as Drizzle sent them. */
interface Statement {
  query: string;
  params: unknown[];
}

/** Where onQuery writes while a request is being counted (statementsOf); null otherwise. */
let recording: Statement[] | null = null;

// The email loop does not poll: while a request is counted, nothing else runs statements.
const t = useTestApp(
  { EMAIL_POLL_INTERVAL: '0' },
  { onQuery: (query, params) => recording?.push({ query, params }) },
);

const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';
const SUMMARY_KEYS = [
  'author',
  'authorId',
  'createdAt',
  'excerpt',
  'id',
  'publishedAt',
  'slug',
  'title',
  'updatedAt',
  'viewCount',
];

function queryString(query: Query): string {
  const entries = Object.entries(query).map(([name, value]): [string, string] => [
    name,
    String(value),
  ]);
  return entries.length > 0 ? `?${new URLSearchParams(entries).toString()}` : '';
}

function listPosts(query: Query = {}, headers: Headers = {}) {
  return t.inject({ method: 'GET', url: `/api/posts${queryString(query)}`, headers });
}

function listUserPosts(userId: string, query: Query = {}, headers: Headers = {}) {
  return t.inject({
    method: 'GET',
    url: `/api/users/${userId}/posts${queryString(query)}`,
    headers,
  });
}

/** The page of a 200 answer. */
function pageOf(res: LightMyRequestResponse): PostPage {
  expect(res.statusCode, res.body).toBe(200);
  return res.json<PostPage>();
}

const idsOf = (page: PostPage) => page.items.map((item) => item.id);

/** A new draft of this author, through the API. */
async function draftOf(
  auth: Headers,
  fields: { title?: string; content?: string } = {},
): Promise<Post> {
  const res = await t.inject({
    method: 'POST',
    url: '/api/posts',
    headers: auth,
    payload: { title: `Post ${unique()}`, content: 'Some words.', ...fields },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<Post>();
}

/** Publishes a post through the API (publishPost), as `auth`. */
async function publish(id: string, auth: Headers): Promise<Post> {
  const res = await t.inject({ method: 'POST', url: `/api/posts/${id}/publish`, headers: auth });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<Post>();
}

async function publishedOf(
  auth: Headers,
  fields: { title?: string; content?: string } = {},
): Promise<Post> {
  return publish((await draftOf(auth, fields)).id, auth);
}

async function signUpAdmin() {
  const admin = await signUpAndLogin(t);
  await t.db.sql(sql`update users set role = 'admin' where id = ${admin.user.id}`);
  return admin;
}

/** Newest first by (time, id): how every listing is ordered. */
function newestFirst<T extends { id: string }>(items: T[], timeOf: (item: T) => string): T[] {
  return [...items].sort((a, b) => {
    const byTime = Date.parse(timeOf(b)) - Date.parse(timeOf(a));
    if (byTime !== 0) return byTime;
    return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
  });
}

const byPublication = (posts: { id: string; publishedAt: string | null }[]) =>
  newestFirst(posts, (post) => post.publishedAt!).map((post) => post.id);

/** A word that no other post of this run contains (letters and digits: one search token). */
const word = (prefix = 'w') => unique(prefix).toLowerCase();

/**
 * Inserts `count` published posts of this author in one statement (bulk data), on
 * `distinctTimes` times a minute apart before `base`.
 */
async function insertPublished(
  authorId: string,
  count: number,
  options: { distinctTimes: number; base: string },
): Promise<void> {
  const prefix = word('bulk');
  await t.db.sql(sql`
    insert into posts (author_id, title, content, slug, published_at)
    select ${authorId}::uuid,
           'Bulk post ' || g,
           'bulk text ' || md5(g::text),
           ${prefix}::text || '-' || g,
           ${options.base}::timestamptz - (g % ${options.distinctTimes}::integer) * interval '1 minute'
    from generate_series(1, ${count}::integer) as g`);
}

describe('listPosts and listUserPosts: published posts', () => {
  it('lists only published posts, newest first, to anybody; drafts never appear', async () => {
    const author = await signUpAndLogin(t);
    const other = await signUpAndLogin(t);
    const tag = word('tag');
    const published = [];
    for (let i = 0; i < 4; i += 1) {
      published.push(await publishedOf(author.auth, { content: `Published ${tag} ${i}.` }));
    }
    const drafts = [
      await draftOf(author.auth, { content: `Draft ${tag}.` }),
      await draftOf(other.auth, { content: `Draft ${tag}.` }),
    ];
    // Published at the same millisecond, two of them are ordered by id.
    await t.db.sql(sql`update posts set published_at = (select published_at from posts
      where id = ${published[0]!.id}) where id = ${published[1]!.id}`);
    published[1] = { ...published[1]!, publishedAt: published[0]!.publishedAt };
    const expected = byPublication(published);

    for (const viewer of [{}, author.auth, other.auth]) {
      expect(idsOf(pageOf(await listPosts({ authorId: author.user.id }, viewer)))).toEqual(
        expected,
      );
      // Unfiltered by author (scoped to this test by its word): nobody's draft shows.
      expect(idsOf(pageOf(await listPosts({ q: tag }, viewer)))).toEqual(expected);
      expect(idsOf(pageOf(await listUserPosts(author.user.id, {}, viewer)))).toEqual(expected);
    }
    const draftIds = drafts.map((draft) => draft.id);
    const page = pageOf(await listPosts({ q: tag }, author.auth));
    expect(idsOf(page).filter((id) => draftIds.includes(id))).toEqual([]);
    expect(page.nextCursor).toBeNull();
  });

  it('gives summaries: exactly the PostSummary keys, the author summary and an excerpt', async () => {
    const named = await signUpAndLogin(t, { firstName: 'Ada', lastName: 'Lovelace' });
    const unnamed = await signUpAndLogin(t);
    const words: string[] = [];
    for (let i = 0; words.join(' ').length < 1000; i += 1) words.push(`word${i}`);
    const long = words.join(' ').slice(0, 1000);
    const longPost = await publishedOf(named.auth, { content: long });
    const shortPost = await publishedOf(unnamed.auth, { content: 'Short and whole.' });

    const [longItem] = pageOf(await listPosts({ authorId: named.user.id })).items;
    const [shortItem] = pageOf(await listUserPosts(unnamed.user.id)).items;
    for (const [item, post] of [
      [longItem, longPost],
      [shortItem, shortPost],
    ] as const) {
      expect(Object.keys(item!).sort()).toEqual(SUMMARY_KEYS);
      const { content: _content, ...rest } = post;
      const { excerpt: _excerpt, ...summary } = item!;
      expect(summary).toEqual(rest);
    }
    expect(longItem!.author).toEqual({
      id: named.user.id,
      username: named.user.username,
      firstName: 'Ada',
      lastName: 'Lovelace',
    });
    expect(shortItem!.author).toEqual({
      id: unnamed.user.id,
      username: unnamed.user.username,
      firstName: null,
      lastName: null,
    });

    // Cut at a word, near 300 characters, with an ellipsis.
    const excerpt = longItem!.excerpt;
    expect(excerpt.length).toBeLessThanOrEqual(301);
    expect(excerpt.endsWith('…')).toBe(true);
    const kept = excerpt.slice(0, -1);
    expect(kept.length).toBeGreaterThan(290);
    expect(long.startsWith(kept)).toBe(true);
    expect(long[kept.length], 'the cut falls between two words').toBe(' ');
    expect(shortItem!.excerpt).toBe('Short and whole.');
  });

  it('filters by authorId', async () => {
    const first = await signUpAndLogin(t);
    const second = await signUpAndLogin(t);
    const tag = word('tag');
    const mine = [
      await publishedOf(first.auth, { content: `A ${tag}` }),
      await publishedOf(first.auth, { content: `B ${tag}` }),
    ];
    const theirs = await publishedOf(second.auth, { content: `C ${tag}` });

    expect(idsOf(pageOf(await listPosts({ authorId: first.user.id })))).toEqual(
      byPublication(mine),
    );
    expect(idsOf(pageOf(await listPosts({ authorId: second.user.id, q: tag })))).toEqual([
      theirs.id,
    ]);
    expect(idsOf(pageOf(await listPosts({ q: tag })))).toEqual(byPublication([...mine, theirs]));
    expect(pageOf(await listPosts({ authorId: UNKNOWN_ID }))).toEqual({
      items: [],
      nextCursor: null,
    });
  });

  it('filters by publishedAfter and publishedBefore, both exclusive', async () => {
    const author = await signUpAndLogin(t);
    const posts = [
      await publishedOf(author.auth),
      await publishedOf(author.auth),
      await publishedOf(author.auth),
    ];
    const times = [
      '2001-02-03T04:05:06.007Z',
      '2001-02-04T04:05:06.007Z',
      '2001-02-05T04:05:06.007Z',
    ];
    for (const [i, post] of posts.entries()) {
      await t.db.sql(sql`update posts set published_at = ${times[i]}::timestamptz
        where id = ${post.id}`);
    }
    const [p1, p2, p3] = posts.map((post) => post.id);
    const [t1, t2, t3] = times;
    const list = async (query: Query) =>
      idsOf(pageOf(await listPosts({ authorId: author.user.id, ...query })));

    expect(await list({})).toEqual([p3, p2, p1]);
    expect(await list({ publishedAfter: t1! })).toEqual([p3, p2]);
    expect(await list({ publishedAfter: '2001-02-03T04:05:06.006Z' })).toEqual([p3, p2, p1]);
    expect(await list({ publishedBefore: t3! })).toEqual([p2, p1]);
    expect(await list({ publishedBefore: '2001-02-05T04:05:06.008Z' })).toEqual([p3, p2, p1]);
    expect(await list({ publishedAfter: t1!, publishedBefore: t3! })).toEqual([p2]);
    expect(await list({ publishedAfter: t3! })).toEqual([]);
    expect(await list({ publishedAfter: t2!, publishedBefore: t2! })).toEqual([]);
    // t2 written with an offset is still t2, still excluded.
    expect(await list({ publishedAfter: '2001-02-04T05:05:06.007+01:00' })).toEqual([p3]);
    expect(
      idsOf(
        pageOf(await listUserPosts(author.user.id, { publishedAfter: t1!, publishedBefore: t3! })),
      ),
    ).toEqual([p2]);
  });

  it('takes every date-time the spec takes: a leap second, years 0000 and 9999 with offsets', async () => {
    const author = await signUpAndLogin(t);
    const post = await publishedOf(author.auth);
    await t.db.sql(sql`update posts set published_at = '2016-12-31T23:59:59.5Z'::timestamptz
      where id = ${post.id}`);
    const list = async (query: Query) =>
      idsOf(pageOf(await listPosts({ authorId: author.user.id, ...query })));

    // The leap second comes after 23:59:59.5 (it was a 500: Invalid Date).
    expect(await list({ publishedBefore: '2016-12-31T23:59:60Z' })).toEqual([post.id]);
    expect(await list({ publishedAfter: '2016-12-31T23:59:60Z' })).toEqual([]);
    expect(await list({ publishedAfter: '2017-01-01T00:59:60+01:00' })).toEqual([]);
    // Before year 1 or after 9999 (a 400 naming nothing: the driver cannot send them).
    expect(await list({ publishedAfter: '0000-01-01T00:00:00Z' })).toEqual([post.id]);
    expect(await list({ publishedBefore: '0000-01-01T00:00:00+01:00' })).toEqual([]);
    expect(await list({ publishedBefore: '9999-12-31T23:59:59-05:00' })).toEqual([post.id]);
    expect(await list({ publishedAfter: '9999-12-31T23:59:59-05:00' })).toEqual([]);
    expect(
      idsOf(
        pageOf(await listUserPosts(author.user.id, { publishedAfter: '0000-01-01T00:00:00Z' })),
      ),
    ).toEqual([post.id]);
  });

  it('searches with q: a rare word, a title word, a phrase, -word; words match whole', async () => {
    const author = await signUpAndLogin(t);
    const [common, rare, titleWord, one, two] = ['common', 'rare', 'title', 'one', 'two'].map(
      (prefix) => word(prefix),
    );
    const found = await publishedOf(author.auth, {
      title: `Alpha ${titleWord}`,
      content: `Here the ${rare} sits with ${common} words.`,
    });
    const inOrder = await publishedOf(author.auth, {
      content: `${common} text where ${one} ${two} come in order.`,
    });
    const reversed = await publishedOf(author.auth, {
      content: `${common} text where ${two} ${one} come reversed.`,
    });
    // A draft with every word: never found by a published listing.
    await draftOf(author.auth, {
      title: `${titleWord}`,
      content: `${common} ${rare} ${one} ${two}`,
    });
    const search = async (q: string) => idsOf(pageOf(await listPosts({ q })));

    expect(await search(rare!)).toEqual([found.id]);
    expect(await search(titleWord!)).toEqual([found.id]);
    expect(await search(`"${one} ${two}"`)).toEqual([inOrder.id]);
    expect(await search(`${one} ${two}`)).toEqual(byPublication([inOrder, reversed]));
    expect(await search(`${common} -${rare}`)).toEqual(byPublication([inOrder, reversed]));
    expect(await search(common!)).toEqual(byPublication([found, inOrder, reversed]));
    expect(await search(`${rare} or ${one}`)).toEqual(byPublication([found, inOrder, reversed]));
    expect(await search(`${rare} or ${titleWord}`)).toEqual([found.id]);
    // No prefixes, no stemming.
    expect(await search(rare!.slice(0, -1))).toEqual([]);
    expect(await search(`${rare}s`)).toEqual([]);
    expect(pageOf(await listPosts({ q: word('nothing') }))).toEqual({
      items: [],
      nextCursor: null,
    });
    expect(idsOf(pageOf(await listUserPosts(author.user.id, { q: rare! })))).toEqual([found.id]);
  });

  it('pages with limit (default 20) and nextCursor, null on the last page', async () => {
    const author = await signUpAndLogin(t);
    await insertPublished(author.user.id, 45, { distinctTimes: 45, base: '2002-01-01T00:00:00Z' });
    const first = pageOf(await listUserPosts(author.user.id));
    expect(first.items).toHaveLength(20);
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = pageOf(
      await listUserPosts(author.user.id, { limit: 25, cursor: first.nextCursor! }),
    );
    expect(second.items).toHaveLength(25);
    expect(second.nextCursor).toBeNull();
    const all = [...first.items, ...second.items];
    expect(new Set(all.map((item) => item.id)).size).toBe(45);
    expect(all.map((item) => item.id)).toEqual(byPublication(all));
    // The page that ends exactly on the last post says so.
    const exact = pageOf(await listPosts({ authorId: author.user.id, limit: 45 }));
    expect(exact.items).toHaveLength(45);
    expect(exact.nextCursor).toBeNull();
    expect(pageOf(await listPosts({ authorId: author.user.id, limit: 100 })).items).toHaveLength(
      45,
    );
  });

  it('answers 400 to a bad cursor, a limit outside 1..100, a bad date or id', async () => {
    const author = await signUpAndLogin(t);
    const cursorOf = (text: string) => Buffer.from(text, 'utf8').toString('base64url');
    const badCursors = [
      'bm9wZQ', // "nope"
      '!!!',
      cursorOf(`2020-02-30T00:00:00.000Z|${UNKNOWN_ID}`),
      cursorOf(`2020-02-03T00:00:00Z|${UNKNOWN_ID}`),
      cursorOf('2020-02-03T00:00:00.000Z|not-a-uuid'),
    ];
    for (const cursor of badCursors) {
      expectValidationError(await listPosts({ cursor }), 'query', '/cursor');
      expectValidationError(await listUserPosts(author.user.id, { cursor }), 'query', '/cursor');
      expectValidationError(
        await listPosts({ status: 'draft', cursor }, author.auth),
        'query',
        '/cursor',
      );
    }
    for (const limit of [0, 101, -1, 'x']) {
      expectValidationError(await listPosts({ limit }), 'query', '/limit');
      expectValidationError(await listUserPosts(author.user.id, { limit }), 'query', '/limit');
    }
    for (const date of ['yesterday', '2024-13-01T00:00:00Z', '2024-01-01']) {
      expectValidationError(await listPosts({ publishedAfter: date }), 'query', '/publishedAfter');
      expectValidationError(
        await listPosts({ publishedBefore: date }),
        'query',
        '/publishedBefore',
      );
    }
    expectValidationError(await listPosts({ authorId: 'not-a-uuid' }), 'query', '/authorId');
    expectValidationError(await listPosts({ status: 'deleted' }), 'query', '/status');
    // A good cursor of one listing is well-formed for any: a page after it, maybe empty.
    expect(
      pageOf(
        await listPosts({
          cursor: cursorOf(`2000-01-01T00:00:00.000Z|${UNKNOWN_ID}`),
          authorId: author.user.id,
        }),
      ),
    ).toEqual({ items: [], nextCursor: null });
  });
});

describe('drafts (status=draft)', () => {
  /** Three drafts of a new author, created at set times, and the order they list in. */
  async function authorWithDrafts() {
    const author = await signUpAndLogin(t);
    const drafts = [
      await draftOf(author.auth),
      await draftOf(author.auth),
      await draftOf(author.auth),
    ];
    const created = [
      '2002-01-03T00:00:00.000Z',
      '2002-01-01T00:00:00.000Z',
      '2002-01-02T00:00:00.000Z',
    ];
    for (const [i, draft] of drafts.entries()) {
      await t.db.sql(
        sql`update posts set created_at = ${created[i]}::timestamptz where id = ${draft.id}`,
      );
    }
    await publishedOf(author.auth);
    const [d1, d2, d3] = drafts.map((draft) => draft.id);
    return { author, drafts: [d1!, d3!, d2!] };
  }

  it("lists the caller's own drafts only, newest first by createdAt, page by page", async () => {
    const { author, drafts } = await authorWithDrafts();
    const other = await signUpAndLogin(t);
    await draftOf(other.auth);

    const page = pageOf(await listPosts({ status: 'draft' }, author.auth));
    expect(idsOf(page)).toEqual(drafts);
    expect(page.nextCursor).toBeNull();
    for (const item of page.items) {
      expect(Object.keys(item).sort()).toEqual(SUMMARY_KEYS);
      expect(item.publishedAt).toBeNull();
      expect(item.authorId).toBe(author.user.id);
    }
    expect(
      idsOf(pageOf(await listPosts({ status: 'draft', authorId: author.user.id }, author.auth))),
    ).toEqual(drafts);

    const first = pageOf(await listPosts({ status: 'draft', limit: 2 }, author.auth));
    expect(idsOf(first)).toEqual(drafts.slice(0, 2));
    const second = pageOf(
      await listPosts({ status: 'draft', limit: 2, cursor: first.nextCursor! }, author.auth),
    );
    expect(idsOf(second)).toEqual(drafts.slice(2));
    expect(second.nextCursor).toBeNull();
  });

  it('searches drafts with q', async () => {
    const author = await signUpAndLogin(t);
    const tag = word('draft');
    const match = await draftOf(author.auth, { content: `with ${tag}` });
    await draftOf(author.auth, { content: 'without' });
    await publishedOf(author.auth, { content: `published ${tag}` });
    expect(idsOf(pageOf(await listPosts({ status: 'draft', q: tag }, author.auth)))).toEqual([
      match.id,
    ]);
  });

  it("answers 403 to a user asking for another's drafts; an admin gets them", async () => {
    const { author, drafts } = await authorWithDrafts();
    const other = await signUpAndLogin(t);
    const admin = await signUpAdmin();

    expectProblem(
      await listPosts({ status: 'draft', authorId: author.user.id }, other.auth),
      403,
      'FORBIDDEN',
    );
    expect(
      idsOf(pageOf(await listPosts({ status: 'draft', authorId: author.user.id }, admin.auth))),
    ).toEqual(drafts);
    // Without authorId, an admin's own drafts (none).
    expect(pageOf(await listPosts({ status: 'draft' }, admin.auth))).toEqual({
      items: [],
      nextCursor: null,
    });
  });

  it('answers 401 anonymously, and 400 to publishedAfter or publishedBefore', async () => {
    const { author } = await authorWithDrafts();
    expectProblem(await listPosts({ status: 'draft' }), 401, 'UNAUTHORIZED');
    expectProblem(
      await listPosts({ status: 'draft' }, { authorization: 'Bearer nope' }),
      401,
      'UNAUTHORIZED',
    );
    expectProblem(await listUserPosts(author.user.id, { status: 'draft' }), 401, 'UNAUTHORIZED');
    const at = '2020-01-01T00:00:00.000Z';
    for (const field of ['publishedAfter', 'publishedBefore']) {
      expectValidationError(
        await listPosts({ status: 'draft', [field]: at }, author.auth),
        'query',
        `/${field}`,
      );
      expectValidationError(
        await listUserPosts(author.user.id, { status: 'draft', [field]: at }, author.auth),
        'query',
        `/${field}`,
      );
    }
  });

  it('listUserPosts with status=draft: 200 to the user, 403 to another, 200 to an admin', async () => {
    const { author, drafts } = await authorWithDrafts();
    const other = await signUpAndLogin(t);
    const admin = await signUpAdmin();
    const url = author.user.id;
    expect(idsOf(pageOf(await listUserPosts(url, { status: 'draft' }, author.auth)))).toEqual(
      drafts,
    );
    expectProblem(await listUserPosts(url, { status: 'draft' }, other.auth), 403, 'FORBIDDEN');
    expect(idsOf(pageOf(await listUserPosts(url, { status: 'draft' }, admin.auth)))).toEqual(
      drafts,
    );
  });

  it('listUserPosts: 404 for an unknown user (either status), 200 empty for a user without posts', async () => {
    const user = await signUpAndLogin(t);
    const admin = await signUpAdmin();
    const instance = `/api/users/${UNKNOWN_ID}/posts`;
    expectProblem(await listUserPosts(UNKNOWN_ID), 404, 'NOT_FOUND', instance);
    expectProblem(await listUserPosts(UNKNOWN_ID, {}, user.auth), 404, 'NOT_FOUND', instance);
    expectProblem(await listUserPosts(UNKNOWN_ID, { status: 'published' }), 404, 'NOT_FOUND');
    expectProblem(
      await listUserPosts(UNKNOWN_ID, { status: 'draft' }, user.auth),
      404,
      'NOT_FOUND',
      instance,
    );
    expectProblem(
      await listUserPosts(UNKNOWN_ID, { status: 'draft' }, admin.auth),
      404,
      'NOT_FOUND',
    );
    // With a cursor (a well-formed one, from nobody's page) it is still nobody's list.
    const cursor = Buffer.from(`2026-01-01T00:00:00.000Z|${UNKNOWN_ID}`).toString('base64url');
    expectProblem(await listUserPosts(UNKNOWN_ID, { cursor }), 404, 'NOT_FOUND', instance);

    const empty = { items: [], nextCursor: null };
    expect(pageOf(await listUserPosts(user.user.id))).toEqual(empty);
    expect(pageOf(await listUserPosts(user.user.id, { status: 'draft' }, user.auth))).toEqual(
      empty,
    );
    // Only drafts: the published listing is empty, not a 404.
    await draftOf(user.auth);
    expect(pageOf(await listUserPosts(user.user.id))).toEqual(empty);
  });
});

describe('a pagination walk while posts are being published', () => {
  const walks = [
    ['listUserPosts', (authorId: string, query: Query) => listUserPosts(authorId, query)],
    ['listPosts?authorId=', (authorId: string, query: Query) => listPosts({ authorId, ...query })],
  ] as const;

  it.each(walks)(
    '%s with limit 37 sees each of 1,000 posts exactly once, strictly newest first',
    async (_name, list) => {
      const author = await signUpAndLogin(t);
      // 1,000 published posts on 50 distinct times (20 per time: pages end inside ties).
      await insertPublished(author.user.id, 1000, {
        distinctTimes: 50,
        base: '2003-01-01T00:00:00.000Z',
      });
      const originals = await t.db.sql(
        sql`select id from posts where author_id = ${author.user.id}`,
      );
      expect(originals).toHaveLength(1000);
      const waiting = [];
      for (let i = 0; i < 60; i += 1) waiting.push(await draftOf(author.auth));

      const seen: PostSummary[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page = pageOf(
          await list(author.user.id, { limit: 37, ...(cursor ? { cursor } : {}) }),
        );
        seen.push(...page.items);
        cursor = page.nextCursor;
        pages += 1;
        expect(pages, 'the walk ends').toBeLessThanOrEqual(30);
        // Meanwhile the author publishes: two through the API, one with SQL.
        for (const draft of waiting.splice(0, 2)) await publish(draft.id, author.auth);
        const [next] = waiting.splice(0, 1);
        if (next) await t.db.sql(sql`update posts set published_at = now() where id = ${next.id}`);
      } while (cursor !== null);

      const ids = seen.map((item) => item.id);
      expect(new Set(ids).size, 'no post is listed twice').toBe(ids.length);
      expect([...ids].sort()).toEqual(originals.map((row) => String(row.id)).sort());
      expect(pages).toBe(Math.ceil(1000 / 37));
      for (let i = 1; i < seen.length; i += 1) {
        const [before, after] = [seen[i - 1]!, seen[i]!];
        const order =
          Date.parse(before.publishedAt!) - Date.parse(after.publishedAt!) ||
          (before.id > after.id ? 1 : -1);
        expect(
          order,
          `item ${i} (${after.publishedAt} ${after.id}) follows ${before.publishedAt} ${before.id}`,
        ).toBeGreaterThan(0);
      }
    },
    60_000,
  );
});

/** The statements the database ran while `request` was answered. */
async function statementsOf(
  request: () => Promise<LightMyRequestResponse>,
): Promise<{ res: LightMyRequestResponse; statements: Statement[] }> {
  const statements: Statement[] = [];
  recording = statements;
  try {
    const res = await request();
    return { res, statements };
  } finally {
    recording = null;
  }
}

const textsOf = (statements: Statement[]) => statements.map((s) => s.query).join('\n');

describe('one statement per page', () => {
  it('listPosts runs one statement: first page, with q, after a cursor', async () => {
    const author = await signUpAndLogin(t);
    const tag = word('one');
    for (let i = 0; i < 3; i += 1) await publishedOf(author.auth, { content: `count ${tag}` });
    const first = await statementsOf(() => listPosts({ limit: 2 }));
    expect(first.statements, textsOf(first.statements)).toHaveLength(1);
    const searched = await statementsOf(() => listPosts({ q: tag, limit: 2 }));
    expect(searched.statements, textsOf(searched.statements)).toHaveLength(1);
    const cursor = pageOf(searched.res).nextCursor!;
    const next = await statementsOf(() => listPosts({ q: tag, limit: 2, cursor }));
    expect(next.statements, textsOf(next.statements)).toHaveLength(1);
    expect(pageOf(next.res).items).toHaveLength(1);
    const filtered = await statementsOf(() =>
      listPosts({ authorId: author.user.id, publishedBefore: '2100-01-01T00:00:00.000Z' }),
    );
    expect(filtered.statements, textsOf(filtered.statements)).toHaveLength(1);
  });

  it('listUserPosts of a user with posts runs one statement', async () => {
    const author = await signUpAndLogin(t);
    await publishedOf(author.auth);
    await publishedOf(author.auth);
    const first = await statementsOf(() => listUserPosts(author.user.id, { limit: 1 }));
    expect(first.statements, textsOf(first.statements)).toHaveLength(1);
    const cursor = pageOf(first.res).nextCursor!;
    const next = await statementsOf(() => listUserPosts(author.user.id, { limit: 1, cursor }));
    expect(next.statements, textsOf(next.statements)).toHaveLength(1);
  });

  it('a signed-in listPosts?status=draft runs two: the session check and the page', async () => {
    const author = await signUpAndLogin(t);
    await draftOf(author.auth);
    const { res, statements } = await statementsOf(() =>
      listPosts({ status: 'draft' }, author.auth),
    );
    expect(pageOf(res).items).toHaveLength(1);
    // A bearer token is checked against its session (live, account active) in one
    // statement on every request; the page is the second.
    expect(statements, textsOf(statements)).toHaveLength(2);
    expect(statements[1]!.query).toMatch(/from "posts"/);
  });
});

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

function nodesOf(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodesOf)];
}

/** A plan in one line, for messages: each node with its index or table, depth first. */
function describePlan(plan: PlanNode): string {
  const self = [plan['Node Type'], plan['Index Name'] ?? plan['Relation Name']]
    .filter(Boolean)
    .join(' ');
  const children = (plan.Plans ?? []).map(describePlan);
  return children.length > 0 ? `${self} (${children.join(', ')})` : self;
}

/** The plan of a statement the app ran, with its parameters, as the planner makes it now. */
async function planOf(statement: Statement): Promise<PlanNode> {
  const parts = statement.query.split(/\$(\d+)/);
  const chunks: SQL[] = [sql.raw('explain (format json) ')];
  parts.forEach((part, i) =>
    chunks.push(i % 2 === 0 ? sql.raw(part) : sql`${statement.params[Number(part) - 1]}`),
  );
  const [row] = await t.db.sql(sql.join(chunks));
  const value = row!['QUERY PLAN'];
  const plans = (typeof value === 'string' ? JSON.parse(value) : value) as { Plan: PlanNode }[];
  return plans[0]!.Plan;
}

/** The one statement a request runs, and its plan. */
async function planOfRequest(label: string, request: () => Promise<LightMyRequestResponse>) {
  const { res, statements } = await statementsOf(request);
  expect(res.statusCode, res.body).toBe(200);
  expect(statements, textsOf(statements)).toHaveLength(1);
  const plan = await planOf(statements[0]!);
  return { plan, nodes: nodesOf(plan), text: `${label}: ${describePlan(plan)}` };
}

const usesIndex = (nodes: PlanNode[], type: string, index: string) =>
  nodes.some((node) => node['Node Type'] === type && node['Index Name'] === index);
const seqScansPosts = (nodes: PlanNode[]) =>
  nodes.some((node) => node['Node Type'] === 'Seq Scan' && node['Relation Name'] === 'posts');
const sorts = (nodes: PlanNode[]) => nodes.some((node) => node['Node Type'].endsWith('Sort'));

describe('the listing statements use the indexes', () => {
  it('walks posts_published_at_id_idx, posts_author_published_at_id_idx and posts_search_idx', async () => {
    // 20,000 published posts of 1,000 authors, interleaved in time (20 posts a minute), as
    // on a site where each author has a small share of the posts: 200 (1%) by one author,
    // about 20 by each other. The planner then walks the author's own index. (When an
    // author has a large share, e.g. four authors of 25% each, it rightly prefers to walk
    // the global index and skip the others' posts; when it expects only a few dozen rows,
    // a bitmap scan and a sort of those.) 20 posts have a rare word.
    const prefix = word('many');
    const rare = word('rare');
    await t.db.sql(sql`insert into users (email, username, password_hash)
      select ${prefix}::text || '-' || i || '@example.com', ${prefix}::text || '-' || i, 'none'
      from generate_series(0, 999) as i`);
    await t.db.sql(sql`
      insert into posts (author_id, title, content, slug, published_at)
      select authors.ids[case when g % 100 = 0 then 1 else 2 + g % 999 end],
             'Bulk post ' || g,
             'bulk text ' || md5(g::text) || case when g % 1000 = 0 then ' ' || ${rare}::text else '' end,
             ${prefix}::text || '-' || g,
             timestamptz '2004-01-01T00:00:00Z' - (g / 20) * interval '1 minute'
      from (select array_agg(id order by id) as ids from users
            where username like ${`${prefix}-%`}) as authors,
           generate_series(1, 20000) as g`);
    // VACUUM as autovacuum would after such a load: until then the new rows' words wait in
    // the GIN index's pending list, which every search through it must read whole, and the
    // planner rightly prefers a Seq Scan for q (estimated at about 1,300 against 900).
    await t.db.sql(sql`vacuum analyze posts`);
    await t.db.sql(sql`analyze users`);
    const [author] = await t.db.sql(sql`select author_id from posts
      where slug = ${`${prefix}-100`}`);
    const authorId = String(author!.author_id);

    /** A cursor at the n-th published post (of one author, when given), newest first. */
    async function cursorAt(n: number, authorId?: string): Promise<string> {
      const [row] = await t.db.sql(sql`select id, published_at from posts
        where published_at is not null ${authorId ? sql`and author_id = ${authorId}` : sql``}
        order by published_at desc, id desc offset ${n} limit 1`);
      const at = new Date(row!.published_at as string | Date).toISOString();
      return Buffer.from(`${at}|${String(row!.id)}`, 'utf8').toString('base64url');
    }

    const deep = await cursorAt(15_000);
    const unfiltered = [
      await planOfRequest('first page', () => listPosts()),
      await planOfRequest('deep page', () => listPosts({ cursor: deep })),
    ];
    for (const { nodes, text } of unfiltered) {
      expect(usesIndex(nodes, 'Index Scan', 'posts_published_at_id_idx'), text).toBe(true);
      expect(seqScansPosts(nodes), text).toBe(false);
      expect(sorts(nodes), text).toBe(false);
    }

    const deepOfAuthor = await cursorAt(100, authorId);
    const byAuthor = [
      await planOfRequest('listUserPosts', () => listUserPosts(authorId)),
      await planOfRequest('authorId', () => listPosts({ authorId })),
      await planOfRequest('listUserPosts, deep', () =>
        listUserPosts(authorId, { cursor: deepOfAuthor }),
      ),
      await planOfRequest('authorId, deep', () => listPosts({ authorId, cursor: deepOfAuthor })),
    ];
    for (const { nodes, text } of byAuthor) {
      expect(usesIndex(nodes, 'Index Scan', 'posts_author_published_at_id_idx'), text).toBe(true);
      expect(seqScansPosts(nodes), text).toBe(false);
      expect(sorts(nodes), text).toBe(false);
    }

    const searched = await planOfRequest('q', () => listPosts({ q: rare }));
    expect(pageOf(await listPosts({ q: rare })).items).toHaveLength(20);
    expect(usesIndex(searched.nodes, 'Bitmap Index Scan', 'posts_search_idx'), searched.text).toBe(
      true,
    );
    expect(seqScansPosts(searched.nodes), searched.text).toBe(false);
  }, 120_000);
});
