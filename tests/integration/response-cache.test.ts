import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogin, type TestApp } from '../helpers/app.js';
import { metricSum as counter } from '../helpers/cache-workload.js';
import { useInstances, type RedisTestApp } from '../helpers/redis.js';

/**
 * The response cache (REDIS_URL): two instances of one deployment on one database and one
 * Redis. Whether an answer came from the cache shows in cache_lookups_total; that it is
 * never stale shows in a read on one instance right after a change through the other.
 */
const METRICS_TOKEN = 'cache-metrics-token-'.padEnd(48, 'c');
const env = { METRICS_TOKEN, RATE_LIMIT_AUTH_MAX: '100000', CACHE_VIEW_COUNT_LAG: '1s' };
const deployment = useInstances([env, env]);
let a: RedisTestApp;
let b: RedisTestApp;
beforeAll(() => {
  [a, b] = deployment.instances as [RedisTestApp, RedisTestApp];
});

const lookups = async (operation: string, result: string) =>
  (await counter(a.app, 'cache_lookups_total', { operation, result })) +
  (await counter(b.app, 'cache_lookups_total', { operation, result }));

const get = (app: RedisTestApp, url: string, headers: Record<string, string> = {}) =>
  app.app.inject({ method: 'GET', url, headers });

async function author(app = a) {
  const signedUp = await signUpAndLogin({
    inject: (options) => app.app.inject(options),
  } as TestApp);
  const auth = { authorization: `Bearer ${signedUp.token}` };
  const write = (method: 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    app.app.inject({ method, url, headers: auth, ...(payload ? { payload } : {}) });
  return { ...signedUp, auth, write };
}

async function publishedPost(app = a, title = `Cached ${Math.random().toString(36).slice(2)}`) {
  const writer = await author(app);
  const created = await writer.write('POST', '/api/posts', { title, content: 'Some content.' });
  expect(created.statusCode, created.body).toBe(201);
  const post = created.json<{ id: string; slug: string }>();
  const published = await writer.write('POST', `/api/posts/${post.id}/publish`);
  expect(published.statusCode, published.body).toBe(200);
  return { writer, post };
}

describe('a public read', () => {
  it('is answered from the cache the second time, byte for byte, on either instance', async () => {
    const { post } = await publishedPost();
    const hitsBefore = await lookups('getPost', 'hit');
    const first = await get(a, `/api/posts/${post.id}`);
    const second = await get(b, `/api/posts/${post.id}`);
    expect(first.statusCode).toBe(200);
    expect(second.statusCode).toBe(200);
    expect(second.body).toBe(first.body);
    expect(second.headers.etag).toBe(first.headers.etag);
    expect(second.headers['cache-control']).toBe(first.headers['cache-control']);
    expect(second.headers['content-type']).toBe(first.headers['content-type']);
    expect(await lookups('getPost', 'hit')).toBe(hitsBefore + 1);
  });

  it('answers 304 from the cache when If-None-Match names the kept ETag', async () => {
    const { post } = await publishedPost();
    const first = await get(a, `/api/posts/${post.id}`);
    const hitsBefore = await lookups('getPost', 'hit');
    const again = await get(b, `/api/posts/${post.id}`, { 'if-none-match': first.headers.etag! });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    expect(again.headers.etag).toBe(first.headers.etag);
    expect(await lookups('getPost', 'hit')).toBe(hitsBefore + 1);
  });

  it('is filled by one request when many ask for it at once on two instances', async () => {
    const { writer } = await publishedPost();
    const missesBefore = await lookups('listUserPosts', 'miss');
    const url = `/api/users/${writer.user.id}/posts`;
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => get(i % 2 === 0 ? a : b, url)),
    );
    for (const answer of answers) {
      expect(answer.statusCode).toBe(200);
      expect(answer.body).toBe(answers[0]!.body);
    }
    expect(await lookups('listUserPosts', 'miss')).toBe(missesBefore + 1);
  });

  it('gives back its claim to fill when the request is refused before its handler', async () => {
    // An anonymous lookup begins at onRequest, before validation: a 400 claims the fill of
    // its (never filled) key, and must give the claim back, or the next asker would wait for
    // a fill that never comes and read without the cache (a bypass).
    const url = '/api/posts?limit=100000';
    const missesBefore = await lookups('listPosts', 'miss');
    const bypassesBefore = await lookups('listPosts', 'bypass');
    expect((await get(a, url)).statusCode).toBe(400);
    expect((await get(b, url)).statusCode).toBe(400);
    expect(await lookups('listPosts', 'miss')).toBe(missesBefore + 2);
    expect(await lookups('listPosts', 'bypass')).toBe(bypassesBefore);
  });

  it('is never shared for a signed-in caller whose view differs: a draft stays its author’s', async () => {
    const writer = await author();
    const created = await writer.write('POST', '/api/posts', {
      title: 'A draft of mine',
      content: 'Not yet.',
    });
    const { id } = created.json<{ id: string }>();
    const own = await get(a, `/api/posts/${id}`, writer.auth);
    expect(own.statusCode).toBe(200);
    expect(own.headers['cache-control']).toBe('private, no-cache');
    // Anonymous: a 404, kept briefly; the author still gets the draft.
    expect((await get(b, `/api/posts/${id}`)).statusCode).toBe(404);
    expect((await get(a, `/api/posts/${id}`)).statusCode).toBe(404);
    expect((await get(b, `/api/posts/${id}`, writer.auth)).statusCode).toBe(200);
    const listing = await get(a, '/api/posts?status=draft', writer.auth);
    expect(listing.json<{ items: { id: string }[] }>().items.map((p) => p.id)).toContain(id);
  });
});

describe('a change, before its response is sent, drops what it altered on every instance', () => {
  it('publishing: the post and the listings show it at once', async () => {
    const writer = await author(b);
    const created = await writer.write('POST', '/api/posts', {
      title: 'Soon public',
      content: 'Wait for it.',
    });
    const post = created.json<{ id: string; slug: string }>();
    // Kept: the 404s and the listings without it.
    expect((await get(a, `/api/posts/${post.id}`)).statusCode).toBe(404);
    expect((await get(a, `/api/posts/by-slug/${post.slug}`)).statusCode).toBe(404);
    const listed = async () =>
      (await get(a, '/api/posts?limit=100'))
        .json<{ items: { id: string }[] }>()
        .items.map((p) => p.id);
    expect(await listed()).not.toContain(post.id);
    await writer.write('POST', `/api/posts/${post.id}/publish`);
    expect((await get(a, `/api/posts/${post.id}`)).statusCode).toBe(200);
    expect((await get(a, `/api/posts/by-slug/${post.slug}`)).statusCode).toBe(200);
    expect(await listed()).toContain(post.id);
    const mine = await get(a, `/api/users/${writer.user.id}/posts`);
    expect(mine.json<{ items: { id: string }[] }>().items.map((p) => p.id)).toEqual([post.id]);
  });

  it('an edit that changes the slug: the new content, the old slug gone, the new one found', async () => {
    const { writer, post } = await publishedPost(b, 'Before the edit');
    expect((await get(a, `/api/posts/${post.id}`)).json<{ title: string }>().title).toBe(
      'Before the edit',
    );
    expect((await get(a, `/api/posts/by-slug/${post.slug}`)).statusCode).toBe(200);
    const edited = await writer.write('PATCH', `/api/posts/${post.id}`, {
      title: 'After the edit',
      slug: `${post.slug}-renamed`,
    });
    expect(edited.statusCode, edited.body).toBe(200);
    expect((await get(a, `/api/posts/${post.id}`)).json<{ title: string }>().title).toBe(
      'After the edit',
    );
    expect((await get(a, `/api/posts/by-slug/${post.slug}`)).statusCode).toBe(404);
    expect((await get(a, `/api/posts/by-slug/${post.slug}-renamed`)).statusCode).toBe(200);
  });

  it('unpublishing and deleting: gone from the post, its slug and the listings', async () => {
    const { writer, post } = await publishedPost(b);
    const second = await publishedPost(b);
    const ids = async () =>
      (await get(a, '/api/posts?limit=100'))
        .json<{ items: { id: string }[] }>()
        .items.map((p) => p.id);
    expect(await ids()).toEqual(expect.arrayContaining([post.id, second.post.id]));
    await get(a, `/api/posts/${post.id}`);
    await get(a, `/api/posts/by-slug/${second.post.slug}`);
    await writer.write('POST', `/api/posts/${post.id}/unpublish`);
    await second.writer.write('DELETE', `/api/posts/${second.post.id}`);
    expect((await get(a, `/api/posts/${post.id}`)).statusCode).toBe(404);
    expect((await get(a, `/api/posts/by-slug/${second.post.slug}`)).statusCode).toBe(404);
    expect(await ids()).not.toEqual(expect.arrayContaining([post.id]));
    expect(await ids()).not.toEqual(expect.arrayContaining([second.post.id]));
  });

  it("an author's new name: their posts, the listings and their profile show it", async () => {
    const { writer, post } = await publishedPost(b);
    await get(a, `/api/posts/${post.id}`);
    await get(a, `/api/users/${writer.user.id}`);
    await get(a, '/api/posts?limit=100');
    const renamed = await writer.write('PATCH', `/api/users/${writer.user.id}`, {
      firstName: 'Renamed',
    });
    expect(renamed.statusCode, renamed.body).toBe(200);
    const shown = await get(a, `/api/posts/${post.id}`);
    expect(shown.json<{ author: { firstName: string } }>().author.firstName).toBe('Renamed');
    const profile = await get(a, `/api/users/${writer.user.id}`);
    expect(profile.json<{ firstName: string }>().firstName).toBe('Renamed');
    const listing = await get(a, '/api/posts?limit=100');
    const item = listing
      .json<{ items: { id: string; author: { firstName: string } }[] }>()
      .items.find((p) => p.id === post.id);
    expect(item?.author.firstName).toBe('Renamed');
  });

  it('a sign-up: the listing of users and the new profile show it', async () => {
    const users = async () =>
      (await get(a, '/api/users?limit=100')).json<{ items: { id: string }[] }>().items;
    const before = await users();
    const signedUp = await author(b);
    expect((await users()).length).toBe(Math.min(100, before.length + 1));
    expect((await get(a, `/api/users/${signedUp.user.id}`)).statusCode).toBe(200);
  });

  it('deleting an account: its profile, its posts and their listings are gone', async () => {
    const { writer, post } = await publishedPost(b);
    await get(a, `/api/users/${writer.user.id}`);
    await get(a, `/api/posts/${post.id}`);
    await get(a, `/api/users/${writer.user.id}/posts`);
    const deleted = await writer.write('DELETE', `/api/users/${writer.user.id}`);
    expect(deleted.statusCode, deleted.body).toBe(200);
    expect((await get(a, `/api/users/${writer.user.id}`)).statusCode).toBe(404);
    expect((await get(a, `/api/posts/${post.id}`)).statusCode).toBe(404);
    expect((await get(a, `/api/users/${writer.user.id}/posts`)).statusCode).toBe(404);
  });
});

/**
 * Runs `reads` while the posts table is locked, until one of them waits on the lock and
 * 100 ms more have passed (the fill waiters' polls of Redis run meanwhile), then lets go.
 */
async function whileReadsWait<T>(reads: () => Promise<T>): Promise<T> {
  const locker = new pg.Client({ connectionString: deployment.databaseUrl });
  await locker.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE posts IN ACCESS EXCLUSIVE MODE');
    const done = reads();
    for (let waiting = 0; waiting === 0;) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      const { rows } = await locker.query<{ count: string }>(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
      );
      waiting = Number(rows[0]!.count);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    await locker.query('COMMIT');
    return await done;
  } finally {
    await locker.end();
  }
}

describe('view counts', () => {
  it('drop nothing from the cache, and show within CACHE_VIEW_COUNT_LAG (1 s here)', async () => {
    const { post } = await publishedPost();
    const viewCount = async () =>
      (await get(b, `/api/posts/${post.id}`)).json<{ viewCount: number }>().viewCount;
    expect(await viewCount()).toBe(0);
    const invalidationsBefore = await counter(a.app, 'cache_invalidations_total', {
      operation: 'getPost',
    });
    const viewed = await a.app.inject({ method: 'POST', url: `/api/posts/${post.id}/views` });
    expect(viewed.statusCode, viewed.body).toBe(200);
    const at = Date.now();
    let seen = await viewCount();
    while (seen === 0 && Date.now() - at < 3000) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      seen = await viewCount();
    }
    expect(seen).toBe(1);
    expect(Date.now() - at).toBeLessThan(1500);
    expect(await counter(a.app, 'cache_invalidations_total', { operation: 'getPost' })).toBe(
      invalidationsBefore,
    );
  });

  it('keep a post past the lag while no view comes, and show the next view at once after it', async () => {
    const { post } = await publishedPost();
    const read = () => get(b, `/api/posts/${post.id}`);
    const first = await read();
    expect(first.json<{ viewCount: number }>().viewCount).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    // Older than the lag, but no view since it was read: still exact, still served.
    const hitsBefore = await lookups('getPost', 'hit');
    const again = await read();
    expect(again.body).toBe(first.body);
    expect(await lookups('getPost', 'hit')).toBe(hitsBefore + 1);
    // A view now: the kept answer, read more than the lag ago, is not served again.
    const viewed = await a.app.inject({ method: 'POST', url: `/api/posts/${post.id}/views` });
    expect(viewed.statusCode, viewed.body).toBe(200);
    // Many at once on both instances, while the database holds the one that fills it again:
    // those waiting for that fill on the other instance (they poll Redis) must never take
    // the answer it replaces meanwhile.
    const answers = await whileReadsWait(async () =>
      Promise.all(
        Array.from({ length: 20 }, (_, i) => get(i % 2 === 0 ? a : b, `/api/posts/${post.id}`)),
      ),
    );
    for (const answer of answers) expect(answer.json<{ viewCount: number }>().viewCount).toBe(1);
  });
});

describe('HTTP caches in front', () => {
  it('may keep the public reads, revalidating each use: ETag, public, no-cache, and 304', async () => {
    const { writer } = await publishedPost();
    for (const url of [
      '/api/posts?limit=7',
      `/api/users/${writer.user.id}/posts`,
      `/api/users/${writer.user.id}`,
      '/api/users?limit=3',
    ]) {
      const first = await get(a, url);
      expect(first.statusCode, url).toBe(200);
      expect(first.headers['cache-control'], url).toBe('public, no-cache');
      const etag = first.headers.etag!;
      expect(etag, url).toMatch(/^"[0-9a-f]{16}"$/);
      // From the cache: b finds a's answer (the handler's own 304: the drafts below).
      const kept = await get(b, url, { 'if-none-match': etag });
      expect([kept.statusCode, kept.body, kept.headers.etag], url).toEqual([304, '', etag]);
    }
  });

  it('keeps a listing of drafts private to its caller, and answers its 304 itself', async () => {
    const writer = await author();
    const drafts = await get(a, '/api/posts?status=draft', writer.auth);
    expect(drafts.statusCode).toBe(200);
    expect(drafts.headers['cache-control']).toBe('private, no-cache');
    const again = await get(a, '/api/posts?status=draft', {
      ...writer.auth,
      'if-none-match': drafts.headers.etag!,
    });
    expect(again.statusCode).toBe(304);
  });
});
