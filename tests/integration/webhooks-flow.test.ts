import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogin, useTestApp, type TestApp, caller } from '../helpers/app.js';
import { SHARED_REDIS_URL, deleteKeys, uniquePrefix } from '../helpers/redis.js';
import {
  startVerifyingReceiver,
  type VerifiedWebhook,
  type VerifyingReceiver,
} from '../helpers/webhook-receiver.js';

/**
 * Webhooks from end to end, on each queue backend: an admin registers a real receiver in
 * the test process through the API, changes made through the API reach it signed (the
 * receiver verifies with the Standard Webhooks library), a 500 is retried, a draft's
 * changes never arrive, a test event and a redelivery go out, and the deliveries list
 * tells it all. The API runs the jobs itself (JOBS_IN_PROCESS).
 */

type Headers = Record<string, string>;

/** A verifying receiver that answers the statuses in `failNext` first, then 204. */
type Receiver = VerifyingReceiver & {
  /** Verified requests answered 204, in arrival order. */
  received: VerifiedWebhook[];
  failNext: number[];
};

/** Resolves once `check` holds, checking after each request the receiver gets. */
async function until(check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the webhook');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function startReceiver(): Promise<Receiver> {
  const received: VerifiedWebhook[] = [];
  const failNext: number[] = [];
  const receiver = await startVerifyingReceiver((webhook, response) => {
    const status = failNext.shift();
    if (status) return void response.writeHead(status).end('not now');
    received.push(webhook);
    response.writeHead(204).end();
  });
  return Object.assign(receiver, { received, failNext });
}

for (const backend of ['postgres', 'redis'] as const) {
  describe(`webhooks from end to end (jobs on ${backend})`, () => {
    const prefix = uniquePrefix();
    const t: TestApp = useTestApp({
      JOBS_IN_PROCESS: 'true',
      EVENTS_RELAY_INTERVAL: '1s',
      EMAIL_POLL_INTERVAL: '0',
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      ...(backend === 'redis' ? { REDIS_URL: SHARED_REDIS_URL, REDIS_KEY_PREFIX: prefix } : {}),
    });
    let receiver: Receiver;
    let admin: Headers;
    let author: Headers;
    let webhookId: string;

    const call = caller(t);

    beforeAll(async () => {
      receiver = await startReceiver();
      const account = await signUpAndLogin(t);
      await t.db.sql(sql`update users set role = 'admin' where id = ${account.user.id}`);
      admin = account.auth;
      const created = await call('POST', '/api/webhooks', admin, {
        url: receiver.url,
        events: ['user.created', 'post.published', 'post.updated', 'post.deleted'],
      });
      expect(created.statusCode, created.body).toBe(201);
      webhookId = created.json<{ id: string }>().id;
      receiver.secret = created.json<{ secret: string }>().secret;
      author = (await signUpAndLogin(t)).auth;
    });

    afterAll(async () => {
      await receiver.close();
      if (backend === 'redis') await deleteKeys(SHARED_REDIS_URL, prefix);
    });

    it('sends a sign-up to the receiver, signed, once', async () => {
      await until(() => receiver.received.some((event) => event.type === 'user.created'));
      const created = receiver.received.filter((event) => event.type === 'user.created');
      expect(created).toHaveLength(1);
      expect(created[0]?.data).not.toHaveProperty('passwordHash');
    });

    it("never sends a draft's changes, and sends its publication", async () => {
      const draft = await call('POST', '/api/posts', author, {
        title: 'Not yet',
        content: 'Draft content that must stay private.',
      });
      expect(draft.statusCode, draft.body).toBe(201);
      const id = draft.json<{ id: string }>().id;
      const edited = await call('PATCH', `/api/posts/${id}`, author, { title: 'Still not yet' });
      expect(edited.statusCode, edited.body).toBe(200);
      const published = await call('POST', `/api/posts/${id}/publish`, author);
      expect(published.statusCode, published.body).toBe(200);

      await until(() => receiver.received.some((event) => event.type === 'post.published'));
      // The outbox holds every event there is: the draft's changes made none.
      const recorded = await t.db.sql(sql`select type from events where subject_id = ${id}`);
      expect(recorded).toEqual([{ type: 'post.published' }]);
      const posts = receiver.received.filter((event) => event.type.startsWith('post.'));
      expect(posts.map((event) => event.type)).toEqual(['post.published']);
      expect(posts[0]?.data).toMatchObject({ id, title: 'Still not yet' });
    });

    it('retries a delivery the receiver answered 500, and lists its attempts', async () => {
      receiver.failNext.push(500);
      const post = await call('POST', '/api/posts', author, {
        title: 'Retried',
        content: 'Published, then retried.',
      });
      expect(post.statusCode, post.body).toBe(201);
      const id = post.json<{ id: string }>().id;
      const published = await call('POST', `/api/posts/${id}/publish`, author);
      expect(published.statusCode, published.body).toBe(200);
      // The retry comes after about 5 s (the schedule's second step).
      await until(() => receiver.received.some((event) => event.data.id === id), 30_000);
      // The worker records the answer once it has it: after the receiver has counted it.
      type Listed = { eventType: string; attempts: number; status: string; responseStatus: number };
      let listed: { statusCode: number; body: string; items: Listed[] } | undefined;
      await until(async () => {
        const deliveries = await call('GET', `/api/webhooks/${webhookId}/deliveries`, admin);
        const items = deliveries.json<{ items: Listed[] }>().items;
        listed = { statusCode: deliveries.statusCode, body: deliveries.body, items };
        return items[0]?.status !== 'pending';
      });
      expect(listed?.statusCode).toBe(200);
      expect(listed?.items[0], listed?.body).toMatchObject({
        eventType: 'post.published',
        attempts: 2,
        status: 'succeeded',
        responseStatus: 204,
      });
    }, 40_000);

    it('sends a test event, and a delivery again when asked', async () => {
      const test = await call('POST', `/api/webhooks/${webhookId}/test`, admin);
      expect(test.statusCode, test.body).toBe(202);
      const { eventId, deliveryId } = test.json<{ eventId: string; deliveryId: string }>();
      await until(() => receiver.received.some((event) => event.id === eventId));
      expect(receiver.received.find((event) => event.id === eventId)).toMatchObject({
        type: 'webhook.test',
        data: { webhookId },
      });

      const again = await call(
        'POST',
        `/api/webhooks/${webhookId}/deliveries/${deliveryId}/redeliver`,
        admin,
      );
      expect(again.statusCode, again.body).toBe(202);
      await until(() => receiver.received.filter((event) => event.id === eventId).length === 2);
    });
  });
}
