import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import { signUpAndLogin, type TestApp } from './app.js';

/**
 * A workload of random reads and writes for the response cache's tests, over several
 * instances of one deployment, that records what each read may show. Each client owns an
 * account and its posts and writes them one change at a time; everybody reads everything.
 *
 * Every change gives the entity a new state. A read that starts after a change's response
 * arrived must show that state or a later one (one whose change had started before the
 * read ended): "later" is checked by each post's version (its ETag's) and slug, each
 * account's first name, and whether a post is shown at all. View counts are the one
 * exception the cache allows: a post read by id must count every view answered more than
 * `viewLagMs` (CACHE_VIEW_COUNT_LAG) before the read started, and none that started after
 * it ended. Every request must get the answer its operation gives when all is well (a 5xx
 * fails the test at once).
 */
/** One state of an entity: when the change that made it started and was answered. */
interface State<T> {
  value: T;
  startedAt: number;
  answeredAt: number;
}
interface PostValue {
  deleted: boolean;
  shown: boolean;
  version: number;
  slug: string;
  title: string;
}

/** An entity's states in order; one writer changes it at a time. */
class History<T> {
  readonly states: State<T>[] = [];
  constructor(first: T, at: number) {
    this.states.push({ value: first, startedAt: at, answeredAt: at });
  }
  begin(at: number): (value: T) => void {
    const state = { value: undefined as unknown as T, startedAt: at, answeredAt: Infinity };
    this.states.push(state);
    return (value) => {
      state.value = value;
      state.answeredAt = performance.now();
    };
  }
  /**
   * The states a read from `start` to `end` may show: the newest answered before it
   * started, and every later one whose change started before it ended.
   */
  possible(start: number, end: number): T[] {
    let floor = 0;
    this.states.forEach((state, i) => {
      if (state.answeredAt <= start) floor = i;
    });
    return this.states
      .slice(floor)
      .filter((state, i) => i === 0 || state.startedAt <= end)
      .map((state) => state.value);
  }
}

const versionOf = (response: LightMyRequestResponse) =>
  Number(/^"(\d+)-/.exec(String(response.headers.etag))?.[1]);

interface Client {
  userId: string;
  auth: Record<string, string>;
  name: History<string>;
  posts: { id: string; slugs: string[]; history: History<PostValue>; views: View[] }[];
}
/** A view of a post that counted: when it was sent and answered. */
interface View {
  startedAt: number;
  answeredAt: number;
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;

export function cacheWorkload(apps: readonly FastifyInstance[], viewLagMs = 5000) {
  const clients: Client[] = [];
  /**
   * The reads' checks, run once every change has been answered: a read may show a change
   * whose response has not arrived yet, and that state is known only then.
   */
  const checks: (() => string | null)[] = [];
  let reads = 0;
  let writes = 0;

  const instance = () => pick(apps);
  const allPosts = () => clients.flatMap((c) => c.posts);

  async function timed(inject: () => Promise<LightMyRequestResponse>) {
    const start = performance.now();
    const response = await inject();
    return { response, start, end: performance.now() };
  }

  function check(ok: () => boolean, what: () => string) {
    checks.push(() => (ok() ? null : what()));
  }

  async function readPost(bySlug: boolean) {
    const post = pick(allPosts());
    const slug = pick(post.slugs);
    const url = bySlug ? `/api/posts/by-slug/${slug}` : `/api/posts/${post.id}`;
    const { response, start, end } = await timed(() => instance().inject({ method: 'GET', url }));
    const possible = () => post.history.possible(start, end);
    if (response.statusCode === 404) {
      check(
        () => possible().some((p) => !p.shown || (bySlug && p.slug !== slug)),
        () => `${url}: 404, but shown in every state it may show: ${JSON.stringify(possible())}`,
      );
      return;
    }
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json<{
      id: string;
      title: string;
      authorId: string;
      author: { firstName: string | null };
      viewCount: number;
    }>();
    if (!bySlug) {
      const counted = () => post.views.filter((v) => v.answeredAt <= start - viewLagMs).length;
      const sent = () => post.views.filter((v) => v.startedAt <= end).length;
      check(
        () => body.viewCount >= counted() && body.viewCount <= sent(),
        () =>
          `${url}: ${body.viewCount} views, expected ${counted()} (answered ${viewLagMs} ms before the read) to ${sent()}`,
      );
    }
    const version = versionOf(response);
    check(
      () =>
        body.id === post.id &&
        possible().some(
          (p) =>
            p.shown &&
            p.version === version &&
            p.title === body.title &&
            (!bySlug || p.slug === slug),
        ),
      () =>
        `${url}: version ${version} "${body.title}", expected one of ${JSON.stringify(possible())}`,
    );
    const names = () => clients.find((c) => c.userId === body.authorId)!.name.possible(start, end);
    check(
      () => names().includes(body.author.firstName ?? ''),
      () => `${url}: author ${body.author.firstName}, expected one of ${JSON.stringify(names())}`,
    );
  }

  async function readListing() {
    const owner = pick(clients);
    const url = `/api/users/${owner.userId}/posts?limit=100`;
    const { response, start, end } = await timed(() => instance().inject({ method: 'GET', url }));
    expect(response.statusCode, response.body).toBe(200);
    const items = response.json<{ items: { id: string; title: string; slug: string }[] }>().items;
    for (const post of [...owner.posts]) {
      const listed = items.find((item) => item.id === post.id);
      const possible = () => post.history.possible(start, end);
      check(
        () =>
          listed
            ? possible().some((p) => p.shown && p.title === listed.title && p.slug === listed.slug)
            : possible().some((p) => !p.shown),
        () =>
          `${url}: ${post.id} ${listed ? `listed as "${listed.title}"` : 'missing'}, expected one of ${JSON.stringify(possible())}`,
      );
    }
  }

  async function readProfile() {
    const owner = pick(clients);
    const url = `/api/users/${owner.userId}`;
    const { response, start, end } = await timed(() => instance().inject({ method: 'GET', url }));
    expect(response.statusCode, response.body).toBe(200);
    const name = response.json<{ firstName: string | null }>().firstName ?? '';
    const possible = () => owner.name.possible(start, end);
    check(
      () => possible().includes(name),
      () => `${url}: ${name}, expected one of ${JSON.stringify(possible())}`,
    );
  }

  /** A view of any post that is shown (anonymous, as a page counts its readers). */
  async function view() {
    const post = pick(allPosts());
    const counted = { startedAt: performance.now(), answeredAt: Infinity };
    post.views.push(counted);
    const url = `/api/posts/${post.id}/views`;
    const response = await instance().inject({ method: 'POST', url });
    if (response.statusCode === 404) {
      post.views.splice(post.views.indexOf(counted), 1);
      return;
    }
    expect(response.statusCode, response.body).toBe(200);
    counted.answeredAt = performance.now();
  }

  let counter = 0;
  async function writePost(client: Client) {
    const send = (method: 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
      instance().inject({ method, url, headers: client.auth, ...(payload ? { payload } : {}) });
    const live = client.posts.filter((p) => !p.history.states.at(-1)!.value.deleted);
    if (live.length < 3) {
      counter += 1;
      const created = await send('POST', '/api/posts', {
        title: `Post ${counter}`,
        content: 'Written by the consistency test.',
        slug: `consistency-${counter}-${Math.random().toString(36).slice(2, 8)}`,
      });
      expect(created.statusCode, created.body).toBe(201);
      const body = created.json<{ id: string; slug: string; title: string }>();
      const history = new History<PostValue>(
        { deleted: false, shown: false, version: NaN, slug: body.slug, title: body.title },
        performance.now(),
      );
      client.posts.push({ id: body.id, slugs: [body.slug], history, views: [] });
      return;
    }
    const post = pick(live);
    const current = post.history.states.at(-1)!.value;
    const done = post.history.begin(performance.now());
    const r = Math.random();
    if (r < 0.1) {
      const deleted = await send('DELETE', `/api/posts/${post.id}`);
      expect(deleted.statusCode, deleted.body).toBe(204);
      done({ ...current, deleted: true, shown: false });
      return;
    }
    let response: LightMyRequestResponse;
    if (r < 0.4) {
      response = await send(
        'POST',
        `/api/posts/${post.id}/${current.shown ? 'unpublish' : 'publish'}`,
      );
    } else {
      counter += 1;
      const slug =
        r < 0.55 ? `consistency-${counter}-${Math.random().toString(36).slice(2, 8)}` : undefined;
      response = await send('PATCH', `/api/posts/${post.id}`, {
        title: `Post edited ${counter}`,
        ...(slug ? { slug } : {}),
      });
      if (slug) post.slugs.push(slug);
    }
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json<{ slug: string; title: string; publishedAt: string | null }>();
    done({
      deleted: false,
      shown: body.publishedAt !== null,
      version: versionOf(response),
      slug: body.slug,
      title: body.title,
    });
  }

  async function rename(client: Client) {
    counter += 1;
    const name = `Name${counter}`;
    const done = client.name.begin(performance.now());
    const renamed = await instance().inject({
      method: 'PATCH',
      url: `/api/users/${client.userId}`,
      headers: client.auth,
      payload: { firstName: name },
    });
    expect(renamed.statusCode, renamed.body).toBe(200);
    done(name);
  }

  async function step(client: Client) {
    const r = Math.random();
    if (r < 0.15) {
      writes += 1;
      return writePost(client);
    }
    if (r < 0.18) {
      writes += 1;
      return rename(client);
    }
    if (r < 0.26) {
      writes += 1;
      return view();
    }
    reads += 1;
    if (r < 0.5) return readPost(false);
    if (r < 0.65) return readPost(true);
    if (r < 0.9) return readListing();
    return readProfile();
  }

  let slowestMs = 0;
  return {
    /** Signs up `count` clients, each with three posts (drafts) before anybody reads. */
    async setUp(count: number) {
      for (let i = 0; i < count; i += 1) {
        const signedUp = await signUpAndLogin({
          inject: (options) => apps[i % apps.length]!.inject(options),
        } as TestApp);
        clients.push({
          userId: signedUp.user.id,
          auth: { authorization: `Bearer ${signedUp.token}` },
          name: new History('', performance.now()),
          posts: [],
        });
      }
      for (const client of clients) for (let i = 0; i < 3; i += 1) await writePost(client);
    },
    /** `operations` steps over all the clients at once; `after(n)` runs after the n-th. */
    async run(operations: number, after?: (done: number) => Promise<void> | void) {
      let started = 0;
      let done = 0;
      await Promise.all(
        clients.map(async (client) => {
          while (started < operations) {
            started += 1;
            const at = performance.now();
            await step(client);
            slowestMs = Math.max(slowestMs, performance.now() - at);
            done += 1;
            await after?.(done);
          }
        }),
      );
    },
    /** The reads that showed a state older than they may: to be run once all is answered. */
    stale: () => checks.map((c) => c()).filter((problem) => problem !== null),
    counts: () => ({ reads, writes, slowestMs }),
  };
}

/** The sum of a metric's series whose labels include `labels`, on one instance. */
export async function metricSum(
  app: FastifyInstance,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  let sum = 0;
  for (const line of (await app.metrics.scrape()).split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** The answers the instances' caches gave (cache_lookups_total{result="hit"}). */
export async function cacheHits(apps: readonly FastifyInstance[]): Promise<number> {
  let hits = 0;
  for (const app of apps) hits += await metricSum(app, 'cache_lookups_total', { result: 'hit' });
  return hits;
}
