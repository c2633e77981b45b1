import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kill, startedServer, type Server } from '../e2e/processes.js';
import { skipWithoutPostgres, startCluster, type Cluster } from '../helpers/cluster.js';
import {
  describeSamples,
  latency,
  steadyTraffic,
  succeeded,
  timedRequest,
  signedUpId,
} from './traffic.js';

/**
 * Every connection of the server's pool held by a statement that cannot finish (the users
 * table locked by another session): requests wait for a connection or for their statement,
 * then get a 503 problem; none hangs, none is a 500, and the server serves again as soon as
 * the lock is released.
 */

const POOL_MAX = 2;
const CONNECT_TIMEOUT_MS = 1000;
const STATEMENT_TIMEOUT_MS = 1500;
/** A request waits for a connection, then for its statement; the client gives up 1 s later. */
const LONGEST_MS = CONNECT_TIMEOUT_MS + STATEMENT_TIMEOUT_MS + 1000 + 2000;

describe.skipIf(skipWithoutPostgres('tests/faults/pool-exhausted.test.ts'))(
  'the connection pool held by slow queries',
  () => {
    let cluster: Cluster;
    let url: string;
    let server: Server;
    let userId: string;

    beforeAll(async () => {
      cluster = await startCluster();
      url = await cluster.createDatabase('api');
      server = await startedServer({
        DATABASE_URL: url,
        DB_POOL_MAX: String(POOL_MAX),
        DB_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
        DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
        RATE_LIMIT_AUTH_MAX: '1000000',
      });
      userId = await signedUpId(server.base, 'pool@example.com', 'pool');
    }, 120_000);

    afterAll(async () => {
      await kill(server);
      await cluster?.destroy();
    });

    /** A session of the test's own that holds an exclusive lock on users until release(). */
    async function lockUsers() {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query('begin');
      await client.query('lock table users in access exclusive mode');
      return {
        release: async () => {
          await client.query('rollback');
          await client.end();
        },
      };
    }

    it('a burst beyond the pool waits, then gets 503 problems; none hangs', async () => {
      const lock = await lockUsers();
      let answers;
      try {
        answers = await Promise.all(
          Array.from({ length: POOL_MAX * 5 }, () =>
            timedRequest('getUser', `${server.base}/api/users/${userId}`),
          ),
        );
      } finally {
        await lock.release();
      }
      const log = `\n${describeSamples(answers, Math.min(...answers.map((a) => a.sentAt)))}`;
      for (const answer of answers) {
        expect(answer.status, log).toBe(503);
        expect(answer.contentType, log).toMatch(/^application\/problem\+json/);
        expect(answer.code).toBe('SERVICE_UNAVAILABLE');
        // It waited (for a connection, or for its statement) before giving up …
        expect(latency(answer), log).toBeGreaterThan(CONNECT_TIMEOUT_MS * 0.9);
        // … and no longer than the pool's wait and a statement's.
        expect(latency(answer), log).toBeLessThan(LONGEST_MS);
      }
      console.info(
        JSON.stringify({
          burst: answers.length,
          fastestMs: Math.round(Math.min(...answers.map(latency))),
          longestMs: Math.round(Math.max(...answers.map(latency))),
        }),
      );
      // The lock released, the same request succeeds.
      expect((await fetch(`${server.base}/api/users/${userId}`)).status).toBe(200);
    }, 30_000);

    it('steady traffic while the pool is held: 503s, never a hang; 200s once it is free', async () => {
      const traffic = steadyTraffic(server.base, userId, 20);
      const origin = performance.now();
      await sleep(1000);
      // From the moment the lock is held (taking it costs a connection and two round trips,
      // during which requests still succeed).
      const lock = await lockUsers();
      const locking = performance.now();
      await sleep(4000);
      const releasing = performance.now();
      await lock.release();
      const released = performance.now();
      await sleep(2000);
      const samples = await traffic.stop();
      const log = `\n${describeSamples(samples, origin)}`;

      const wrong = samples.filter(
        (s) =>
          !succeeded(s) &&
          !(s.status === 503 && s.contentType?.startsWith('application/problem+json')),
      );
      expect(wrong, `answers other than 2xx or a 503 problem${log}`).toEqual([]);
      const longest = Math.max(...samples.map(latency));
      expect(longest, `the longest request took ${longest.toFixed(0)} ms${log}`).toBeLessThan(
        LONGEST_MS,
      );
      const before = samples.filter((s) => s.doneAt < locking);
      expect(before.length).toBeGreaterThan(5);
      expect(before.every(succeeded), log).toBe(true);
      // Sent while the lock was held, with time to wait for a connection and then for the
      // statement to time out before it was released: 503. (A request that got a connection
      // only as another's statement timed out starts its own statement up to
      // CONNECT_TIMEOUT_MS after it was sent, and may still be waiting at the release.)
      const held = samples.filter(
        (s) =>
          s.sentAt > locking &&
          s.sentAt < releasing - CONNECT_TIMEOUT_MS - STATEMENT_TIMEOUT_MS - 500,
      );
      expect(held.length).toBeGreaterThan(10);
      expect(
        held.every((s) => s.status === 503),
        log,
      ).toBe(true);
      const after = samples.filter((s) => s.sentAt > released);
      const firstBack = after.find(succeeded);
      expect(firstBack, log).toBeDefined();
      const recovery = firstBack!.doneAt - released;
      const afterFirst = after.filter((s) => s.sentAt > firstBack!.doneAt + 500);
      expect(afterFirst.length).toBeGreaterThan(5);
      expect(afterFirst.every(succeeded), log).toBe(true);
      console.info(
        JSON.stringify({
          requests: samples.length,
          '2xx': samples.filter(succeeded).length,
          '503': samples.filter((s) => s.status === 503).length,
          longestMs: Math.round(longest),
          releaseToFirst2xxMs: Math.round(recovery),
        }),
      );
      expect(server.child.exitCode, server.output()).toBeNull();
    }, 30_000);
  },
);
