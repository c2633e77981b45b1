import { expect, it } from 'vitest';
import { signUpAndLogin, type TestApp } from '../helpers/app.js';
import { cacheHits, cacheWorkload } from '../helpers/cache-workload.js';
import { useInstances } from '../helpers/redis.js';

/**
 * The response cache is never stale: 10,000 random writes, views and reads from 8 clients,
 * each on either of two instances that share one database and one Redis (tests/helpers/
 * cache-workload.ts says what "stale" means and how it is checked); a view count is at most
 * CACHE_VIEW_COUNT_LAG late.
 */
const CLIENTS = 8;
const OPERATIONS = 10_000;
const VIEW_LAG_MS = 1000;
const env = {
  RATE_LIMIT_MAX: '1000000',
  METRICS_TOKEN: 'consistency-metrics-'.padEnd(40, 'm'),
  CACHE_VIEW_COUNT_LAG: `${VIEW_LAG_MS / 1000}s`,
};
const deployment = useInstances([env, env]);

it(`serves no stale answer in ${OPERATIONS} random reads and writes over two instances`, async () => {
  const { apps } = deployment;
  const workload = cacheWorkload(apps, VIEW_LAG_MS);
  await workload.setUp(CLIENTS);
  await workload.run(OPERATIONS);
  const { reads, writes } = workload.counts();
  expect(reads + writes).toBeGreaterThanOrEqual(OPERATIONS);
  const stale = workload.stale();
  expect(stale.slice(0, 10), `${stale.length} stale answers in ${reads} reads`).toEqual([]);
  // The cache answered a good share of the reads, or this would prove nothing.
  const hits = await cacheHits(apps);
  console.log(`${reads} reads, ${writes} writes, ${hits} answered from the cache`);
  expect(hits).toBeGreaterThan(reads / 10);
}, 300_000);

/**
 * View counts alone: with nothing else changing, a post's kept answer lives until a view
 * comes (and the lag after it), so a late count would show here, where the mix above drops
 * every post's answers at each rename. Views and reads by id of 12 published posts from 8
 * clients on either instance, spread over a few seconds (several times the lag).
 */
it('shows every view in a post read by id within CACHE_VIEW_COUNT_LAG, on either instance', async () => {
  const { apps } = deployment;
  const writer = await signUpAndLogin({ inject: (o) => apps[0]!.inject(o) } as TestApp);
  const auth = { authorization: `Bearer ${writer.token}` };
  const posts: { id: string; views: { startedAt: number; answeredAt: number }[] }[] = [];
  for (let i = 0; i < 12; i += 1) {
    const created = await apps[0]!.inject({
      method: 'POST',
      url: '/api/posts',
      headers: auth,
      payload: { title: `Viewed ${i}`, content: 'Counted.' },
    });
    const { id } = created.json<{ id: string }>();
    const published = await apps[1]!.inject({
      method: 'POST',
      url: `/api/posts/${id}/publish`,
      headers: auth,
    });
    expect(published.statusCode, published.body).toBe(200);
    posts.push({ id, views: [] });
  }
  const pick = <T>(items: readonly T[]) => items[Math.floor(Math.random() * items.length)]!;
  const problems: (() => string | null)[] = [];
  const hitsBefore = await cacheHits(apps);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (performance.now() - started < VIEW_LAG_MS * 4) {
        const post = pick(posts);
        const app = pick(apps);
        if (Math.random() < 0.2) {
          const view = { startedAt: performance.now(), answeredAt: Infinity };
          post.views.push(view);
          const viewed = await app.inject({ method: 'POST', url: `/api/posts/${post.id}/views` });
          expect(viewed.statusCode, viewed.body).toBe(200);
          view.answeredAt = performance.now();
        } else {
          const start = performance.now();
          const read = await app.inject({ method: 'GET', url: `/api/posts/${post.id}` });
          const end = performance.now();
          expect(read.statusCode, read.body).toBe(200);
          const { viewCount } = read.json<{ viewCount: number }>();
          // Checked once every view is answered: a view in flight may show already.
          problems.push(() => {
            const counted = post.views.filter((v) => v.answeredAt <= start - VIEW_LAG_MS).length;
            const sent = post.views.filter((v) => v.startedAt <= end).length;
            return viewCount >= counted && viewCount <= sent
              ? null
              : `${post.id} at ${Math.round(start - started)} ms: ${viewCount} views, expected ${counted} to ${sent}`;
          });
        }
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 4));
      }
    }),
  );
  const hits = (await cacheHits(apps)) - hitsBefore;
  const late = problems.map((p) => p()).filter((p) => p !== null);
  expect(late.slice(0, 10), `${late.length} late view counts in ${problems.length} reads`).toEqual(
    [],
  );
  // Most reads came from the cache, or this would prove nothing.
  expect(hits).toBeGreaterThan(problems.length / 2);
}, 60_000);
