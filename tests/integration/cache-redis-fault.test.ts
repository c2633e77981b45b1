import { afterAll, beforeAll, expect, it } from 'vitest';
import { cacheHits, cacheWorkload } from '../helpers/cache-workload.js';
import {
  throwawayRedis,
  useInstances,
  type RedisTestApp,
  type ThrowawayRedis,
} from '../helpers/redis.js';

/**
 * The response cache when its Redis dies: two instances under the random workload of the
 * consistency test, their Redis (one of this file's own) killed with SIGKILL a fifth of the
 * way through and started again (empty) at half. Every request is answered as when all is
 * well and in bounded time, no answer is stale, each instance says once that the cache is
 * unreachable and once that it is back, and the cache answers again afterwards.
 */
const OPERATIONS = 4000;
let redis: ThrowawayRedis;

// Before the instances': they start on a running Redis.
beforeAll(async () => {
  redis = await throwawayRedis();
  await redis.start();
});
afterAll(async () => {
  await redis?.stop();
});

const env = { RATE_LIMIT_MAX: '1000000', METRICS_TOKEN: 'cache-fault-metrics-'.padEnd(40, 'f') };
const deployment = useInstances([env, env], { redisUrl: () => redis.url });

const lines = (instance: RedisTestApp, text: string) =>
  instance.logs.filter((line) => String(line.msg).includes(text)).length;

it('answers every request while Redis is killed and started again, none stale', async () => {
  const { apps, instances } = deployment;
  const workload = cacheWorkload(apps);
  await workload.setUp(6);
  let hitsAtRestart = 0;
  const steps = { killed: false, restarted: false };
  await workload.run(OPERATIONS, async (done) => {
    if (done >= OPERATIONS / 5 && !steps.killed) {
      steps.killed = true;
      await redis.kill();
    } else if (done >= OPERATIONS / 2 && !steps.restarted) {
      steps.restarted = true;
      await redis.start();
      hitsAtRestart = await cacheHits(apps);
    }
  });
  expect(steps).toEqual({ killed: true, restarted: true });
  const { reads, slowestMs } = workload.counts();
  const stale = workload.stale();
  expect(stale.slice(0, 10), `${stale.length} stale answers in ${reads} reads`).toEqual([]);
  // Nothing waited on the dead Redis: no queue of commands, no reconnection in the way.
  expect(slowestMs).toBeLessThan(1500);
  expect(await cacheHits(apps)).toBeGreaterThan(hitsAtRestart);
  for (const instance of instances) {
    expect(lines(instance, 'the response cache cannot use redis')).toBe(1);
    expect(lines(instance, 'the response cache uses redis again')).toBe(1);
  }
}, 300_000);

it('costs a request at most the timeouts while Redis stops answering, then uses it again', async () => {
  const [first] = deployment.instances;
  const app = first!.app;
  const { Redis } = await import('ioredis');
  const admin = new Redis(redis.url, { maxRetriesPerRequest: 0 });
  try {
    const posts = await app.inject({ method: 'GET', url: '/api/posts?limit=1' });
    const url = `/api/posts/${posts.json<{ items: { id: string }[] }>().items[0]!.id}`;
    await app.inject({ method: 'GET', url });
    const warnings = lines(first!, 'the response cache cannot use redis');
    // Every client of this Redis waits until the pause ends (ours included).
    await admin.call('CLIENT', 'PAUSE', '3000', 'ALL');
    const started = performance.now();
    const answer = await app.inject({ method: 'GET', url });
    const tookMs = performance.now() - started;
    expect(answer.statusCode).toBe(200);
    // The cache's 100 ms and the rate limits' 250 ms, not the pause's 3 s.
    expect(tookMs).toBeLessThan(1500);
    expect(lines(first!, 'the response cache cannot use redis')).toBe(warnings + 1);
    await admin.call('CLIENT', 'UNPAUSE');
    const hits = await cacheHits([app]);
    const deadline = Date.now() + 10_000;
    while ((await cacheHits([app])) === hits && Date.now() < deadline) {
      await app.inject({ method: 'GET', url });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await cacheHits([app])).toBeGreaterThan(hits);
  } finally {
    await admin.call('CLIENT', 'UNPAUSE').catch(() => undefined);
    admin.disconnect();
  }
}, 60_000);
