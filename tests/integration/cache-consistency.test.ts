import { expect, it } from 'vitest';
import { cacheHits, cacheWorkload } from '../helpers/cache-workload.js';
import { useInstances } from '../helpers/redis.js';

/**
 * The response cache is never stale: 10,000 random writes and reads from 8 clients, each on
 * either of two instances that share one database and one Redis (tests/helpers/
 * cache-workload.ts says what "stale" means and how it is checked).
 */
const CLIENTS = 8;
const OPERATIONS = 10_000;
const env = { RATE_LIMIT_MAX: '1000000', METRICS_TOKEN: 'consistency-metrics-'.padEnd(40, 'm') };
const deployment = useInstances([env, env]);

it(`serves no stale answer in ${OPERATIONS} random reads and writes over two instances`, async () => {
  const { apps } = deployment;
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
