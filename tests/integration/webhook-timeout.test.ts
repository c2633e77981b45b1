import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogin, useTestApp, type TestApp, caller } from '../helpers/app.js';
import { jobBackends, signal } from '../helpers/jobs.js';
import { SHARED_REDIS_URL, deleteKeys, uniquePrefix } from '../helpers/redis.js';
import {
  startVerifyingReceiver,
  until,
  type VerifyingReceiver,
} from '../helpers/webhook-receiver.js';

/**
 * A receiver that does not answer in time, on each queue backend: the attempt fails at
 * its deadline, the next one succeeds, and the deliveries list tells both. The API runs
 * the jobs itself (JOBS_IN_PROCESS), with an attempt deadline of a second and a retry half
 * a second later (production: 10 s, and 5 s), given through buildApp's deps.
 */

type Headers = Record<string, string>;

interface Delivery {
  eventId: string;
  status: string;
  attempts: number;
  responseStatus: number | null;
  durationMs: number | null;
  lastError: string | null;
}

for (const backend of jobBackends) {
  describe(`a webhook receiver that does not answer in time (jobs on ${backend})`, () => {
    const prefix = uniquePrefix();
    const t: TestApp = useTestApp(
      {
        JOBS_IN_PROCESS: 'true',
        EVENTS_RELAY_INTERVAL: '1s',
        EMAIL_POLL_INTERVAL: '0',
        WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
        ...(backend === 'redis' ? { REDIS_URL: SHARED_REDIS_URL, REDIS_KEY_PREFIX: prefix } : {}),
      },
      { deps: { webhookTiming: { attemptTimeoutMs: 1000, retrySchedule: [0, 500, 500] } } },
    );
    let receiver: VerifyingReceiver | undefined;
    let admin: Headers;

    const call = caller(t);

    beforeAll(async () => {
      const account = await signUpAndLogin(t);
      await t.db.sql(sql`update users set role = 'admin' where id = ${account.user.id}`);
      admin = account.auth;
    });

    afterAll(async () => {
      await receiver?.close();
      if (backend === 'redis') await deleteKeys(SHARED_REDIS_URL, prefix);
    });

    it('retries the delivery after the deadline, and lists the timeout, then the success', async () => {
      // The first request is never answered; the second is answered when the test says.
      const firstAbandoned = signal();
      const retried = signal<() => void>();
      receiver = await startVerifyingReceiver((_webhook, response) => {
        if (receiver?.verified.length === 1) {
          response.once('close', () => firstAbandoned.resolve());
          return;
        }
        retried.resolve(() => response.writeHead(204).end());
      });
      const created = await call('POST', '/api/webhooks', admin, {
        url: receiver.url,
        events: ['post.published'],
      });
      expect(created.statusCode, created.body).toBe(201);
      receiver.secret = created.json<{ secret: string }>().secret;
      const webhookId = created.json<{ id: string }>().id;
      const deliveries = async () => {
        const listed = await call('GET', `/api/webhooks/${webhookId}/deliveries`, admin);
        expect(listed.statusCode, listed.body).toBe(200);
        return listed.json<{ items: Delivery[] }>().items;
      };

      const author = await signUpAndLogin(t);
      const post = await call('POST', '/api/posts', author.auth, {
        title: 'Slow receiver',
        content: 'It takes its time.',
      });
      expect(post.statusCode, post.body).toBe(201);
      const postId = post.json<{ id: string }>().id;
      const published = await call('POST', `/api/posts/${postId}/publish`, author.auth);
      expect(published.statusCode, published.body).toBe(200);

      // The sender gives up on the first request at its deadline (it closes the connection),
      // then tries again.
      await firstAbandoned.promise;
      const answer = await retried.promise;
      const [during] = await deliveries();
      expect(during).toMatchObject({
        eventId: receiver.verified[0]?.id,
        status: 'pending',
        attempts: 2,
        responseStatus: null,
        lastError: 'no response within 1000 ms',
      });
      expect(during?.durationMs).toBeGreaterThanOrEqual(1000);

      answer();
      await until(async () => (await deliveries())[0]?.status !== 'pending', 'recorded');
      expect((await deliveries())[0]).toMatchObject({
        status: 'succeeded',
        attempts: 2,
        responseStatus: 204,
        lastError: null,
      });
      // Both requests carried the same event, signed: the receiver can tell a retry.
      expect(receiver.verified).toEqual([
        expect.objectContaining({
          type: 'post.published',
          data: expect.objectContaining({ id: postId }),
        }),
        receiver.verified[0],
      ]);
      expect(receiver.refused()).toBe(0);
    });
  });
}
