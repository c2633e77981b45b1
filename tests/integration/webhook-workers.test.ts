import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import {
  TEST_JWT_SECRET,
  signUpAndLogin,
  useTestApp,
  type TestApp,
  caller,
} from '../helpers/app.js';
import { jobBackends, signal } from '../helpers/jobs.js';
import { SHARED_REDIS_URL, deleteKeys, uniquePrefix } from '../helpers/redis.js';
import {
  startVerifyingReceiver,
  until,
  type AnswerWebhook,
  type VerifyingReceiver,
} from '../helpers/webhook-receiver.js';

/**
 * Webhooks delivered by worker processes (the project's worker, tests/helpers/
 * webhook-worker-process.ts) while things go wrong, on each queue backend: a worker killed
 * with SIGKILL while a receiver holds its request open leaves the delivery to another
 * worker, and two workers sending at once never send one attempt twice. The API runs in
 * the test process and only records events; the workers relay and deliver them.
 *
 * The workers' job locks last a second (BullMQ's default: 30 s), their attempts 5 s
 * (production: 10 s) and their leases 10 s (production: 2 minutes): a lease longer than
 * the time a dead worker's job takes to be run again, as in production.
 */

const workerFile = fileURLToPath(new URL('../helpers/webhook-worker-process.ts', import.meta.url));
const TIMING = {
  jobLocks: { lockDurationMs: 1000, stalledIntervalMs: 500 },
  webhookTiming: { attemptTimeoutMs: 5000, leaseMs: 10_000 },
};
/** Jobs one worker runs at once. */
const CONCURRENCY = 5;

type Headers = Record<string, string>;

interface WorkerProcess {
  child: ChildProcess;
  /** The next line on its stdout that matches, from now on. */
  next(pattern: RegExp): Promise<string>;
  alive(): boolean;
  /** Kills it with `signal` and waits until it is gone. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

function startWorker(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', workerFile], {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? '', ...env, TEST_TIMING: JSON.stringify(TIMING) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const waiting: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  let rest = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      for (const waiter of waiting.filter((candidate) => candidate.pattern.test(line))) {
        waiting.splice(waiting.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  const exited = once(child, 'exit');
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    alive,
    next: (pattern) =>
      new Promise((resolve, reject) => {
        waiting.push({ pattern, resolve });
        void exited.then(() => reject(new Error(`the worker exited before ${pattern}`)));
      }),
    async kill(how) {
      if (!alive()) return;
      child.kill(how);
      await exited;
    },
  };
}

for (const backend of jobBackends) {
  describe(`webhook workers (jobs on ${backend})`, () => {
    const prefix = uniquePrefix();
    const redis: Record<string, string> =
      backend === 'redis' ? { REDIS_URL: SHARED_REDIS_URL, REDIS_KEY_PREFIX: prefix } : {};
    // The API: it records the events; the worker processes relay and deliver them.
    const t: TestApp = useTestApp({ ...redis, EMAIL_POLL_INTERVAL: '0' });
    const workers: WorkerProcess[] = [];
    const receivers: VerifyingReceiver[] = [];
    let admin: Headers;
    let author: Headers;

    const call = caller(t);

    /** A worker process on the app's database and queue; resolves once it is ready. */
    async function readyWorker(): Promise<WorkerProcess> {
      const worker = startWorker({
        ...redis,
        NODE_ENV: 'test',
        LOG_LEVEL: 'warn',
        DATABASE_URL: t.db.url,
        JWT_SECRET: TEST_JWT_SECRET,
        EVENTS_RELAY_INTERVAL: '1s',
        EMAIL_POLL_INTERVAL: '0',
        WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
        JOB_CONCURRENCY: String(CONCURRENCY),
      });
      workers.push(worker);
      await worker.next(/^ready$/);
      return worker;
    }

    /** A receiver, registered by the admin for post.published; answers its webhook id. */
    async function endpointFor(answer: AnswerWebhook) {
      const receiver = await startVerifyingReceiver(answer);
      receivers.push(receiver);
      const created = await call('POST', '/api/webhooks', admin, {
        url: receiver.url,
        events: ['post.published'],
      });
      expect(created.statusCode, created.body).toBe(201);
      receiver.secret = created.json<{ secret: string }>().secret;
      return { receiver, id: created.json<{ id: string }>().id };
    }

    async function publishPost(title: string): Promise<string> {
      const post = await call('POST', '/api/posts', author, { title, content: `${title}.` });
      expect(post.statusCode, post.body).toBe(201);
      const id = post.json<{ id: string }>().id;
      const published = await call('POST', `/api/posts/${id}/publish`, author);
      expect(published.statusCode, published.body).toBe(200);
      return id;
    }

    interface Delivery {
      eventId: string;
      status: string;
      attempts: number;
      responseStatus: number | null;
    }

    async function deliveriesOf(webhookId: string): Promise<Delivery[]> {
      const listed = await call('GET', `/api/webhooks/${webhookId}/deliveries?limit=100`, admin);
      expect(listed.statusCode, listed.body).toBe(200);
      return listed.json<{ items: Delivery[] }>().items;
    }

    beforeAll(async () => {
      const account = await signUpAndLogin(t);
      await t.db.sql(sql`update users set role = 'admin' where id = ${account.user.id}`);
      admin = account.auth;
      author = (await signUpAndLogin(t)).auth;
      await Promise.all([readyWorker(), readyWorker()]);
    }, 60_000);

    afterAll(async () => {
      await Promise.all(workers.map((worker) => worker.kill('SIGKILL')));
      await Promise.all(receivers.map((receiver) => receiver.close()));
      if (backend === 'redis') await deleteKeys(SHARED_REDIS_URL, prefix);
    });

    it('leaves the delivery of a worker killed mid-request to another worker', async () => {
      // The first request is held open, never answered; the next is answered 204.
      const held = signal();
      const { receiver, id: webhookId } = await endpointFor((_webhook, response) => {
        if (receiver.verified.length === 1) return held.resolve();
        response.writeHead(204).end();
      });
      const sender = Promise.race(
        workers.map((worker) => worker.next(/^sending /).then(() => worker)),
      );
      const postId = await publishPost('Held, then killed');
      await held.promise;
      const killed = await sender;
      await killed.kill('SIGKILL');
      const survivor = workers.find((worker) => worker.alive());
      const survivorSends = survivor?.next(/^sending /);

      // Its job's lock expires within a second, the other worker runs the job again, and the
      // attempt goes out again once the dead worker's lease is over.
      await survivorSends;
      await until(async () => (await deliveriesOf(webhookId))[0]?.status !== 'pending', 'recorded');
      const [delivery] = await deliveriesOf(webhookId);
      expect(delivery).toMatchObject({ status: 'succeeded', attempts: 2, responseStatus: 204 });
      // The receiver verified both requests: the same event, under the same webhook-id.
      const event = { id: delivery?.eventId, type: 'post.published' };
      expect(receiver.verified).toEqual([
        expect.objectContaining({ ...event, data: expect.objectContaining({ id: postId }) }),
        expect.objectContaining({ ...event, data: expect.objectContaining({ id: postId }) }),
      ]);
      expect(receiver.refused()).toBe(0);
      // Its deliveries are done: the next test's events go to its own endpoints.
      expect((await call('DELETE', `/api/webhooks/${webhookId}`, admin)).statusCode).toBe(204);
    }, 45_000);

    it('sends each attempt once with two workers at work: 50 events to 2 endpoints', async () => {
      while (workers.filter((worker) => worker.alive()).length < 2) await readyWorker();
      // The receivers answer nothing until six requests are open at once: one worker sends
      // at most five at a time (its JOB_CONCURRENCY), so both are sending by then.
      const open: ServerResponse[] = [];
      let mostOpen = 0;
      const answer: AnswerWebhook = (_webhook, response) => {
        if (mostOpen > CONCURRENCY) return void response.writeHead(204).end();
        open.push(response);
        mostOpen = open.length;
        if (mostOpen > CONCURRENCY) for (const waiting of open) waiting.writeHead(204).end();
      };
      const endpoints = [await endpointFor(answer), await endpointFor(answer)];

      const postIds: string[] = [];
      for (let n = 1; n <= 50; n += 1) postIds.push(await publishPost(`Post ${n}`));
      const rows = await t.db.sql(
        sql`select id from events where type = 'post.published' and subject_id in ${postIds}`,
      );
      const eventIds = rows.map((row) => String(row.id)).sort();
      expect(eventIds).toHaveLength(50);

      for (const { id } of endpoints) {
        await until(
          async () => (await deliveriesOf(id)).filter((d) => d.status !== 'pending').length === 50,
          'every delivery is recorded',
          40_000,
        );
      }
      expect(mostOpen).toBe(CONCURRENCY + 1);
      for (const { receiver, id } of endpoints) {
        // Each event once, signed; each delivery succeeded at its first attempt.
        expect(receiver.verified.map((webhook) => webhook.id).sort()).toEqual(eventIds);
        expect(receiver.refused()).toBe(0);
        const deliveries = await deliveriesOf(id);
        expect(deliveries.map((d) => d.eventId).sort()).toEqual(eventIds);
        for (const delivery of deliveries) {
          expect(delivery).toMatchObject({ status: 'succeeded', attempts: 1, responseStatus: 204 });
        }
      }
    }, 60_000);
  });
}
