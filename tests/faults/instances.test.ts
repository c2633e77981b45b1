import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kill, logIn, startedServer, type Server } from '../e2e/processes.js';
import { skipWithoutPostgres, startCluster, type Cluster } from '../helpers/cluster.js';
import { startSmtpSink, type SmtpSink } from '../helpers/mail.js';
import { SHARED_REDIS_URL, deleteKeys, uniquePrefix } from '../helpers/redis.js';
import { json, signUp as signUpAt } from './traffic.js';

/**
 * Two server processes on one database, as behind a load balancer: what one does, the
 * other knows (a rotated refresh token, a taken email address), and the work they share
 * (the email outbox) is done once.
 */

const REUSE_GRACE_SECONDS = 1;
/** verifyEmail's limit per client address; no other test here calls it. */
const VERIFY_EMAIL_MAX = 6;

describe.skipIf(skipWithoutPostgres('tests/faults/instances.test.ts'))(
  'two instances on one database',
  () => {
    let cluster: Cluster;
    let sink: SmtpSink;
    let a: Server;
    let b: Server;
    let url: string;
    const prefix = uniquePrefix();

    beforeAll(async () => {
      [cluster, sink] = await Promise.all([startCluster(), startSmtpSink({ delayMs: 100 })]);
      url = await cluster.createDatabase('api');
      const env = {
        DATABASE_URL: url,
        SMTP_URL: sink.url,
        // Both run the jobs (on the shared Redis, under this test's prefix): the email
        // deliveries asked for by either's requests, and the schedule, often.
        JOBS_IN_PROCESS: 'true',
        EMAIL_POLL_INTERVAL: '1s',
        REFRESH_REUSE_GRACE: `${REUSE_GRACE_SECONDS}s`,
        // The rate limits are counted in the shared Redis (a key prefix of this test's).
        REDIS_URL: SHARED_REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        RATE_LIMIT_SIGNUP_MAX: '1000',
        RATE_LIMIT_VERIFY_EMAIL_MAX: String(VERIFY_EMAIL_MAX),
      };
      [a, b] = await Promise.all([startedServer(env), startedServer(env)]);
    }, 120_000);

    afterAll(async () => {
      await Promise.all([kill(a), kill(b)]);
      await Promise.all([cluster?.destroy(), sink?.close(), deleteKeys(SHARED_REDIS_URL, prefix)]);
    });

    const signUp = (server: Server, email: string, username: string) =>
      signUpAt(server.base, email, username);

    const refresh = (server: Server, refreshToken: string) =>
      fetch(`${server.base}/api/auth/refresh`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ refreshToken }),
      });

    it('a refresh token rotated on one is refused on the other, and its session ends', async () => {
      expect((await signUp(a, 'rotate@example.com', 'rotate')).status).toBe(201);
      const login = await logIn(a.base, 'rotate@example.com');
      expect(login.status).toBe(200);
      const first = (await login.json()) as { accessToken: string; refreshToken: string };

      const rotated = await refresh(a, first.refreshToken);
      expect(rotated.status).toBe(200);
      const second = (await rotated.json()) as { accessToken: string; refreshToken: string };
      // Within the grace period a replay counts as a lost answer's retry: wait it out.
      await sleep(REUSE_GRACE_SECONDS * 1000 + 500);

      const replayed = await refresh(b, first.refreshToken);
      expect(replayed.status).toBe(401);
      expect(replayed.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      // A replayed token means two parties hold the session: all of it ends, on both.
      expect((await refresh(b, second.refreshToken)).status).toBe(401);
      expect((await refresh(a, second.refreshToken)).status).toBe(401);
      for (const server of [a, b]) {
        const me = await fetch(`${server.base}/api/auth/me`, {
          headers: { authorization: `Bearer ${second.accessToken}` },
        });
        expect(me.status).toBe(401);
      }
    });

    it('counts a client against one rate limit across both (shared in Redis)', async () => {
      // Alternating instances: counted apart, each would let VERIFY_EMAIL_MAX through.
      const statuses: number[] = [];
      for (let i = 0; i < VERIFY_EMAIL_MAX * 2; i++) {
        const response = await fetch(`${(i % 2 === 0 ? a : b).base}/api/auth/email/verify`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ token: 'q3b9VXxkF1m0c8ZJrJQ5yq2cDk9m0mJ8T2bqXo7n4mA' }),
        });
        statuses.push(response.status);
      }
      // An unknown token is a 400, and counts like any attempt.
      expect(statuses.slice(0, VERIFY_EMAIL_MAX).every((status) => status === 400)).toBe(true);
      expect(statuses.slice(VERIFY_EMAIL_MAX)).toEqual(Array(VERIFY_EMAIL_MAX).fill(429));
    });

    it('a sign-up race on one address, split across both, yields one 201 and 409s', async () => {
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          signUp(i % 2 === 0 ? a : b, 'race@example.com', `racer_${i}`).then((r) => r.status),
        ),
      );
      expect(answers.filter((status) => status === 201)).toHaveLength(1);
      expect(answers.filter((status) => status === 409)).toHaveLength(answers.length - 1);
    });

    // The last test here: it ends by stopping both servers.
    it('emails queued on both are each sent once, with both running email deliveries', async () => {
      const before = sink.received.length;
      const addresses = Array.from({ length: 24 }, (_, i) => `once_${i}@example.com`);
      const statuses = await Promise.all(
        addresses.map((address, i) =>
          signUp(i % 2 === 0 ? a : b, address, `once_${i}`).then((r) => r.status),
        ),
      );
      expect(statuses.every((status) => status === 201)).toBe(true);
      // A password reset asked on one and, a moment later, the same on the other: one email
      // (one a minute per address), sent once.
      const forgot = (server: Server) =>
        fetch(`${server.base}/api/auth/password/forgot`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ email: addresses[0] }),
        });
      expect((await forgot(a)).status).toBe(202);
      expect((await forgot(b)).status).toBe(202);

      const expected = addresses.length + 1;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new Error(`${sink.received.length - before} of ${expected} emails arrived`));
        }, 30_000);
      });
      try {
        await Promise.race([sink.waitFor(before + expected), timeout]);
      } finally {
        clearTimeout(timer);
      }
      // Nothing more can come. Both servers stop (SIGTERM): a server exits 0 only once its
      // delivery run has sent and marked the batch in hand (lifecycle.ts, preClose), and the
      // sink records an email before it acknowledges it, so every send either made is in
      // sink.received now. And none of these emails is left unsent in the outbox, where a
      // run (or a lease that ran out) could send it again later. Waiting a few runs
      // instead would pass whenever a second send is merely slow.
      expect(a.child.exitCode, a.output().slice(-4000)).toBeNull();
      expect(b.child.exitCode, b.output().slice(-4000)).toBeNull();
      const [exitA, exitB] = await Promise.all([a.stop(), b.stop()]);
      expect(exitA, a.output().slice(-4000)).toBe(0);
      expect(exitB, b.output().slice(-4000)).toBe(0);
      const database = new pg.Client({ connectionString: url });
      await database.connect();
      try {
        const { rows } = await database.query<{ recipient: string }>(
          'select recipient from email_outbox where recipient = any($1) and sent_at is null',
          [addresses],
        );
        expect(rows, 'emails still waiting to be sent').toEqual([]);
      } finally {
        await database.end();
      }
      // Only this test's recipients: an email of an earlier test (the race's verification)
      // may arrive late, while this one runs.
      const received = sink.received
        .slice(before)
        .filter((mail) => mail.recipients.some((recipient) => addresses.includes(recipient)));
      const perRecipient = new Map<string, string[]>();
      for (const mail of received) {
        for (const recipient of mail.recipients) {
          perRecipient.set(recipient, [...(perRecipient.get(recipient) ?? []), mail.subject]);
        }
      }
      const extra = [...perRecipient].filter(([address, subjects]) =>
        address === addresses[0] ? subjects.length !== 2 : subjects.length !== 1,
      );
      expect(received, `recipients with a wrong count: ${JSON.stringify(extra)}`).toHaveLength(
        expected,
      );
      for (const [i, address] of addresses.entries()) {
        expect(perRecipient.get(address), address).toHaveLength(i === 0 ? 2 : 1);
      }
    }, 60_000);
  },
);
