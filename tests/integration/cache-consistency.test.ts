import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { cacheHits, cacheWorkload } from '../helpers/cache-workload.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import {
  SHARED_REDIS_URL,
  deleteKeys,
  redisTestApp,
  uniquePrefix,
  type RedisTestApp,
} from '../helpers/redis.js';

/**
 * The response cache is never stale: 10,000 random writes and reads from 8 clients, each on
 * either of two instances that share one database and one Redis (tests/helpers/
 * cache-workload.ts says what "stale" means and how it is checked).
 */
const CLIENTS = 8;
const OPERATIONS = 10_000;
const prefix = uniquePrefix();
let db: TestDatabase;
let instances: RedisTestApp[];

beforeAll(async () => {
  db = await createTestDatabase();
  const env = {
    REDIS_URL: SHARED_REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    RATE_LIMIT_MAX: '1000000',
    METRICS_TOKEN: 'consistency-metrics-'.padEnd(40, 'm'),
  };
  instances = await Promise.all([redisTestApp(db, env), redisTestApp(db, env)]);
}, 60_000);

afterEach(() => {
  expect(instances.flatMap((i) => i.violations())).toEqual([]);
});

afterAll(async () => {
  await Promise.all((instances ?? []).map((i) => i.app.close()));
  await db?.drop();
  await deleteKeys(SHARED_REDIS_URL, prefix);
});

it(`serves no stale answer in ${OPERATIONS} random reads and writes over two instances`, async () => {
  const apps = instances.map((i) => i.app);
  const workload = cacheWorkload(apps);
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
