import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kill, startedServer, type Server } from '../e2e/processes.js';
import { skipWithoutPostgres, startCluster, type Cluster } from '../helpers/cluster.js';
import {
  describeSamples,
  json,
  latency,
  steadyTraffic,
  succeeded,
  timedRequest,
  type Sample,
  signedUpId,
} from './traffic.js';

/**
 * PostgreSQL stopped and started again under steady traffic, on a cluster of the test's
 * own: the server process stays up, answers 503 problems while the database is down (and
 * never hangs), and answers 200 again soon after it is back.
 */

const CONNECT_TIMEOUT_MS = 2000;
const STATEMENT_TIMEOUT_MS = 2000;
/** The longest a request may take: the pool's wait, then a statement's (the client's limit). */
const LONGEST_MS = CONNECT_TIMEOUT_MS + STATEMENT_TIMEOUT_MS + 1000 + 2000;
/** The bound: 200s again within 5 s of the database's return. */
const RECOVERY_BOUND_MS = 5000;
const OUTAGE_MS = 3000;
const REQUESTS_PER_SECOND = 30;

describe.skipIf(skipWithoutPostgres('tests/faults/postgres-restart.test.ts'))(
  'PostgreSQL restarted under steady traffic',
  () => {
    let cluster: Cluster;
    let server: Server;
    let userId: string;
    let url: string;
    const figures: Record<string, unknown>[] = [];

    beforeAll(async () => {
      cluster = await startCluster();
      url = await cluster.createDatabase('api');
      server = await startedServer({
        DATABASE_URL: url,
        DB_POOL_MAX: '10',
        DB_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
        DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
        RATE_LIMIT_AUTH_MAX: '1000000',
        EMAIL_POLL_INTERVAL: '1s',
      });
      userId = await signedUpId(server.base, 'steady@example.com', 'steady');
    }, 120_000);

    afterAll(async () => {
      await kill(server);
      await cluster?.destroy();
      if (figures.length > 0) console.info(JSON.stringify(figures, null, 2));
    });

    /** Resolves with the time a new connection to the database first succeeds. */
    async function firstConnection(): Promise<number> {
      for (;;) {
        const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
        client.on('error', () => undefined);
        try {
          await client.connect();
          const at = performance.now();
          await client.end();
          return at;
        } catch {
          await client.end().catch(() => undefined);
          await sleep(20);
        }
      }
    }

    /** Steady traffic; the database stopped in `mode`, down for OUTAGE_MS, started again. */
    async function outage(mode: 'fast' | 'immediate') {
      const traffic = steadyTraffic(server.base, userId, REQUESTS_PER_SECOND);
      const origin = performance.now();
      await sleep(1500);
      const stopping = performance.now();
      await cluster.stop(mode);
      const stopped = performance.now();
      await sleep(OUTAGE_MS);
      const starting = performance.now();
      const accepting = firstConnection();
      await cluster.start();
      // When the database first accepted a connection (pg_ctl start notices a little later).
      const started = await accepting;
      // Traffic until the first success after the outage, and 2 s more of it.
      const deadline = started + RECOVERY_BOUND_MS * 3;
      while (performance.now() < deadline) {
        if (traffic.answered().some((s) => succeeded(s) && s.sentAt > stopped)) break;
        await sleep(50);
      }
      await sleep(2000);
      const samples = await traffic.stop();
      return { samples, origin, stopping, stopped, starting, started };
    }

    function check(mode: string, run: Awaited<ReturnType<typeof outage>>) {
      const { samples, origin, stopping, stopped, starting, started } = run;
      const log = `\n${describeSamples(samples, origin)}`;
      const count = (status: number) => samples.filter((s) => s.status === status).length;
      const first503 = samples
        .filter((s) => s.status === 503)
        .reduce<Sample | undefined>((a, b) => (!a || b.doneAt < a.doneAt ? b : a), undefined);
      const firstBack = samples
        .filter((s) => succeeded(s) && s.sentAt > stopped)
        .reduce<Sample | undefined>((a, b) => (!a || b.doneAt < a.doneAt ? b : a), undefined);
      const longest = Math.max(...samples.map(latency));
      const figure = {
        mode,
        requests: samples.length,
        '2xx': samples.filter(succeeded).length,
        '503': count(503),
        other: samples.filter((s) => !succeeded(s) && s.status !== 503).length,
        stopCommandMs: Math.round(stopped - stopping),
        stopToFirst503Ms: first503 ? Math.round(first503.doneAt - stopping) : null,
        longestRequestMs: Math.round(longest),
        acceptingToFirst2xxMs: firstBack ? Math.round(firstBack.doneAt - started) : null,
        startToAcceptingMs: Math.round(started - starting),
      };
      figures.push(figure);

      // The process never exited.
      expect(
        server.child.exitCode,
        `the server exited:\n${server.output().slice(-4000)}`,
      ).toBeNull();
      expect(
        server.child.signalCode,
        `the server was killed:\n${server.output().slice(-4000)}`,
      ).toBeNull();

      // Every answer is a success or a 503 problem: no 500, no dropped connection, no hang.
      const wrong = samples.filter(
        (s) =>
          !succeeded(s) &&
          !(s.status === 503 && s.contentType?.startsWith('application/problem+json')),
      );
      expect(wrong, `answers other than 2xx or a 503 problem${log}`).toEqual([]);
      expect(
        samples.filter((s) => s.status === 503).every((s) => s.code === 'SERVICE_UNAVAILABLE'),
      ).toBe(true);
      expect(longest, `the longest request took ${longest.toFixed(0)} ms${log}`).toBeLessThan(
        LONGEST_MS,
      );

      // Before the stop: successes only.
      const before = samples.filter((s) => s.doneAt < stopping);
      expect(before.length).toBeGreaterThan(10);
      expect(before.every(succeeded), log).toBe(true);
      // While the database is down: 503s only, and there were some.
      const during = samples.filter((s) => s.sentAt > stopped && s.doneAt < starting);
      expect(during.length).toBeGreaterThan(10);
      expect(
        during.every((s) => s.status === 503),
        log,
      ).toBe(true);
      // After its return: a success within the bound, and nothing but successes after that.
      expect(firstBack, `no success after the database came back${log}`).toBeDefined();
      const recovery = firstBack!.doneAt - started;
      expect(
        recovery,
        `the first success came ${recovery.toFixed(0)} ms after the database was back${log}`,
      ).toBeLessThan(RECOVERY_BOUND_MS);
      const after = samples.filter((s) => s.sentAt > firstBack!.doneAt);
      expect(after.length).toBeGreaterThan(10);
      expect(after.every(succeeded), log).toBe(true);
      // The process never exited, and still answers.
      expect(server.child.exitCode, server.output()).toBeNull();
      expect(server.child.signalCode).toBeNull();
    }

    it('pg_ctl stop -m fast: 503s while it is down, 200s again within 5 s of its return', async () => {
      check('fast', await outage('fast'));
      expect((await fetch(`${server.base}/ready`)).status).toBe(200);
    }, 60_000);

    it('pg_ctl stop -m immediate (a crash): the same', async () => {
      check('immediate', await outage('immediate'));
      expect((await fetch(`${server.base}/ready`)).status).toBe(200);
    }, 60_000);

    it('stopped while requests hold connections mid-transaction: 503s, the process lives', async () => {
      // Sign-ups wait inside their transactions on a lock the test holds, each holding a
      // connection of the pool, when the database goes away under them.
      const holder = new pg.Client({ connectionString: url });
      holder.on('error', () => undefined);
      await holder.connect();
      await holder.query('begin');
      await holder.query('lock table users in access exclusive mode');
      const signUps = Array.from({ length: 5 }, (_, i) =>
        timedRequest('createUser', `${server.base}/api/users`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify({
            email: `held_${i}@example.com`,
            password: 'correct horse battery staple',
            username: `held_${i}`,
          }),
        }),
      );
      // Stopped only once all five wait on the lock, each on a connection of the pool: after
      // a fixed pause instead, a slow start would stop the database before they reach it,
      // and their 503s (no connection) would not be about held connections at all.
      const waitUntil = performance.now() + 20_000;
      for (;;) {
        const { rows } = await holder.query<{ waiting: number }>(
          `select count(*)::int as waiting from pg_locks
           where relation = 'users'::regclass and not granted`,
        );
        if (rows[0]!.waiting >= signUps.length) break;
        if (performance.now() > waitUntil) {
          throw new Error(`${rows[0]!.waiting} of ${signUps.length} sign-ups wait on the lock`);
        }
        await sleep(20);
      }
      await cluster.stop('fast');
      await holder.end().catch(() => undefined);
      const answers = await Promise.all(signUps);
      await cluster.start();
      const log = `\n${describeSamples(answers, answers[0]!.sentAt)}`;
      expect(
        server.child.exitCode,
        `the server exited:\n${server.output().slice(-4000)}`,
      ).toBeNull();
      for (const answer of answers) {
        expect(answer.status, log).toBe(503);
        expect(answer.code, log).toBe('SERVICE_UNAVAILABLE');
      }
      const deadline = performance.now() + RECOVERY_BOUND_MS;
      let status = 0;
      while (performance.now() < deadline && status !== 200) {
        status = (await fetch(`${server.base}/api/users/${userId}`)).status;
        if (status !== 200) await sleep(50);
      }
      expect(status).toBe(200);
    }, 60_000);
  },
);
