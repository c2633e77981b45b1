import type { ServerResponse } from 'node:http';
import { sql } from 'drizzle-orm';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDeliveriesRepository } from '../../src/modules/webhooks/deliveries-repository.js';
import {
  createWebhookDelivery,
  type WebhookDeliveryOptions,
  type WebhookSend,
} from '../../src/modules/webhooks/delivery.js';
import { createWebhookDispatcher, sendWebhook } from '../../src/lib/webhooks/index.js';
import type { DomainEvent } from '../../src/modules/events/types.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startWebhookReceiver, type ReceivedRequest } from '../helpers/webhook-receiver.js';

/**
 * The worker's side of webhooks on a real database, against a real HTTP receiver: the
 * fan-out, one attempt per claim, retries, giving up, disabling an endpoint that keeps
 * failing and the per-endpoint limit. The queue is the port `schedule` (its own tests run
 * it on BullMQ). Attempts go out signed, through the address-checking dispatcher (with
 * private networks allowed, the receiver being on loopback).
 */

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const verifier = new Webhook(SECRET);

type Answer = (request: ReceivedRequest, response: ServerResponse) => void;

interface Receiver {
  url: string;
  requests: { id: string | undefined; body: string }[];
  answer: Answer;
  close(): Promise<void>;
}

/**
 * A real receiver that verifies every request's signature with the Standard Webhooks
 * library (a request that fails it is not counted and gets a 401), then answers as the
 * test says.
 */
async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = {
    url: '',
    requests: [],
    answer: (_request, response) => response.writeHead(204).end(),
    close: async () => undefined,
  };
  const server = await startWebhookReceiver((request, response) => {
    try {
      verifier.verify(request.body, request.headers as Record<string, string>);
    } catch {
      response.writeHead(401).end('bad signature');
      return;
    }
    receiver.requests.push({ id: request.headers['webhook-id'] as string, body: request.body });
    receiver.answer(request, response);
  });
  receiver.url = server.url;
  receiver.close = () => server.close();
  return receiver;
}

const dispatcher = createWebhookDispatcher({ allowPrivateNetworks: true });
const send: WebhookSend = (attempt) => sendWebhook(attempt, { dispatcher });

let testDb: TestDatabase;
let receiver: Receiver;
let scheduled: { deliveryId: string; jobId: string; delayMs: number }[];
let disabled: string[];

function delivery(overrides: Partial<WebhookDeliveryOptions> = {}) {
  return createWebhookDelivery({
    deliveries: createDeliveriesRepository(testDb.database.db),
    send,
    schedule: async (deliveryId, jobId, delayMs) => {
      scheduled.push({ deliveryId, jobId, delayMs });
    },
    retryDelayMs: (made) => (made < 3 ? 1000 * made : null),
    disableAfterMs: 24 * 3600_000,
    perEndpointConcurrency: 4,
    onDisabled: (endpointId) => {
      disabled.push(endpointId);
    },
    ...overrides,
  });
}

async function endpoint(url: string, eventTypes: string[], enabled = true): Promise<string> {
  const [row] = await testDb.sql(sql`
    insert into webhook_endpoints (url, event_types, enabled, secret)
    values (${url}, string_to_array(${eventTypes.join(',')}, ','), ${enabled}, ${SECRET})
    returning id`);
  return String(row?.id);
}

async function event(type: DomainEvent['type']): Promise<DomainEvent> {
  const [row] = await testDb.sql(sql`
    insert into events (type, subject_id, payload)
    values (${type}, gen_random_uuid(), ${JSON.stringify({ id: 'x', title: 'Hello' })}::jsonb)
    returning id, subject_id, occurred_at, payload`);
  return {
    id: String(row?.id),
    type,
    occurredAt: new Date(String(row?.occurred_at)).toISOString(),
    subjectId: String(row?.subject_id),
    payload: row?.payload,
  };
}

async function deliveryRow(id: string) {
  const [row] = await testDb.sql(sql`select * from webhook_deliveries where id = ${id}`);
  return row ?? {};
}

/** Makes a pending delivery's next attempt due now (instead of waiting for its delay). */
async function makeDue(id: string): Promise<void> {
  await testDb.sql(sql`update webhook_deliveries set next_attempt_at = now() where id = ${id}`);
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  receiver = await startReceiver();
});

afterAll(async () => {
  await receiver.close();
  await dispatcher.close();
  await testDb.drop();
});

beforeEach(async () => {
  scheduled = [];
  disabled = [];
  receiver.requests = [];
  receiver.answer = (_request, response) => response.writeHead(204).end();
  await testDb.sql(sql`delete from webhook_endpoints`);
});

describe('webhook delivery', () => {
  it('fans an event out once to each enabled endpoint subscribed to its type', async () => {
    const wanted = await endpoint(receiver.url, ['post.published', 'post.deleted']);
    await endpoint(receiver.url, ['user.created']);
    await endpoint(receiver.url, ['post.published'], false);
    const published = await event('post.published');
    const worker = delivery();

    expect(await worker.dispatch(published)).toBe(1);
    // A job run again makes no second delivery and queues the same attempt (same job id).
    expect(await worker.dispatch(published)).toBe(1);

    const rows = await testDb.sql(
      sql`select endpoint_id, status, attempts from webhook_deliveries where event_id = ${published.id}`,
    );
    expect(rows).toEqual([{ endpoint_id: wanted, status: 'pending', attempts: 0 }]);
    expect(new Set(scheduled.map((job) => job.jobId)).size).toBe(1);
  });

  it('sends the envelope with the event id and records the success', async () => {
    await endpoint(receiver.url, ['post.published']);
    const published = await event('post.published');
    const worker = delivery();
    await worker.dispatch(published);
    const [job] = scheduled;

    expect(await worker.attempt(job!.deliveryId)).toBe('succeeded');

    expect(receiver.requests).toHaveLength(1);
    expect(receiver.requests[0]?.id).toBe(published.id);
    expect(JSON.parse(receiver.requests[0]!.body)).toEqual({
      type: 'post.published',
      timestamp: published.occurredAt,
      data: published.payload,
    });
    expect(await deliveryRow(job!.deliveryId)).toMatchObject({
      status: 'succeeded',
      attempts: 1,
      response_status: 204,
      next_attempt_at: null,
    });
  });

  it('retries after a 500, then succeeds; gives up after the last attempt', async () => {
    await endpoint(receiver.url, ['post.published']);
    const worker = delivery();
    await worker.dispatch(await event('post.published'));
    const id = scheduled[0]!.deliveryId;
    receiver.answer = (_request, response) => response.writeHead(500).end('down for a moment');

    expect(await worker.attempt(id)).toBe('retry');
    expect(scheduled[1]).toMatchObject({ deliveryId: id, delayMs: 1000 });
    expect(await deliveryRow(id)).toMatchObject({
      status: 'pending',
      attempts: 1,
      response_status: 500,
      response_body: 'down for a moment',
      last_error: 'the endpoint answered 500 Internal Server Error',
    });
    // Not due yet: a job run early sends nothing.
    expect(await worker.attempt(id)).toBe('skipped');

    await makeDue(id);
    expect(await worker.attempt(id)).toBe('retry');
    await makeDue(id);
    expect(await worker.attempt(id)).toBe('failed');
    expect(await deliveryRow(id)).toMatchObject({ status: 'failed', attempts: 3 });
    expect(receiver.requests).toHaveLength(3);
  });

  it('sends one attempt once when two workers run its job at the same time', async () => {
    await endpoint(receiver.url, ['post.published']);
    const worker = delivery();
    await worker.dispatch(await event('post.published'));
    const id = scheduled[0]!.deliveryId;

    const results = await Promise.all([delivery().attempt(id), delivery().attempt(id)]);

    expect(results.sort()).toEqual(['skipped', 'succeeded']);
    expect(receiver.requests).toHaveLength(1);
  });

  it("queues an attempt held by a dead worker's lease for the lease's end, once", async () => {
    await endpoint(receiver.url, ['post.published']);
    const worker = delivery({ leaseMs: 60_000 });
    await worker.dispatch(await event('post.published'));
    const id = scheduled[0]!.deliveryId;
    // A worker claims the first attempt, then dies before it sends it.
    const claimed = await createDeliveriesRepository(testDb.database.db).claim(id, 60_000);
    expect(claimed).toMatchObject({ deliveryId: id, attempt: 1 });
    scheduled = [];

    // Its job, run again by another worker (stalled-job recovery), finds the attempt leased:
    // it queues the next attempt for the lease's end, under one job id however often it runs.
    expect(await worker.attempt(id)).toBe('skipped');
    expect(await worker.attempt(id)).toBe('skipped');
    expect(scheduled.map((job) => job.jobId)).toEqual([
      `delivery-${id}-2-due`,
      `delivery-${id}-2-due`,
    ]);
    expect(scheduled[0]!.delayMs).toBeGreaterThan(50_000);
    expect(scheduled[0]!.delayMs).toBeLessThanOrEqual(60_000);
    expect(receiver.requests).toHaveLength(0);

    // When it is due, that job sends the second attempt; a delivery done queues nothing.
    await makeDue(id);
    expect(await worker.attempt(id)).toBe('succeeded');
    expect(await deliveryRow(id)).toMatchObject({ status: 'succeeded', attempts: 2 });
    scheduled = [];
    expect(await worker.attempt(id)).toBe('skipped');
    expect(scheduled).toEqual([]);
    expect(receiver.requests).toHaveLength(1);
  });

  it('disables an endpoint that has failed for too long, and says so once', async () => {
    const failing = await endpoint(receiver.url, ['post.published']);
    await testDb.sql(
      sql`update webhook_endpoints set failing_since = now() - interval '2 days' where id = ${failing}`,
    );
    receiver.answer = (_request, response) => response.writeHead(503).end();
    const worker = delivery();
    await worker.dispatch(await event('post.published'));
    await worker.dispatch(await event('post.published'));

    await worker.attempt(scheduled[0]!.deliveryId);
    expect(disabled).toEqual([failing]);
    const [row] = await testDb.sql(
      sql`select enabled, disabled_reason from webhook_endpoints where id = ${failing}`,
    );
    expect(row).toEqual({ enabled: false, disabled_reason: 'failing' });
    // The other delivery to the disabled endpoint is not sent.
    expect(await worker.attempt(scheduled[1]!.deliveryId)).toBe('skipped');
    expect(disabled).toEqual([failing]);
  });

  it('holds a slow endpoint to its limit without holding up another endpoint', async () => {
    const slowUrl = `${receiver.url}/slow`;
    await endpoint(slowUrl, ['post.published']);
    await endpoint(`${receiver.url}/fast`, ['user.created']);
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let arrived: () => void = () => undefined;
    const slowArrived = new Promise<void>((resolve) => (arrived = resolve));
    receiver.answer = (request, response) => {
      if (!request.path.endsWith('/slow')) return void response.writeHead(204).end();
      arrived();
      void held.then(() => response.writeHead(204).end());
    };
    const worker = delivery({ perEndpointConcurrency: 1 });
    await worker.dispatch(await event('post.published'));
    await worker.dispatch(await event('post.published'));
    await worker.dispatch(await event('user.created'));
    const [first, second, fast] = scheduled.map((job) => job.deliveryId);

    const inFlight = worker.attempt(first!);
    await slowArrived;
    expect(await worker.attempt(second!)).toBe('busy');
    expect(await worker.attempt(fast!)).toBe('succeeded');
    release();
    expect(await inFlight).toBe('succeeded');
    // The busy attempt was queued again, not lost, and not counted as an attempt.
    expect(scheduled.at(-1)).toMatchObject({ deliveryId: second, delayMs: 250 });
    expect(await deliveryRow(second!)).toMatchObject({ status: 'pending', attempts: 0 });
  });

  it('queues again the attempts whose jobs were lost', async () => {
    await endpoint(receiver.url, ['post.published']);
    const worker = delivery();
    await worker.dispatch(await event('post.published'));
    const id = scheduled[0]!.deliveryId;
    await testDb.sql(
      sql`update webhook_deliveries set next_attempt_at = now() - interval '1 hour' where id = ${id}`,
    );
    scheduled = [];

    expect(await worker.sweep()).toBe(1);
    expect(scheduled).toEqual([expect.objectContaining({ deliveryId: id, delayMs: 0 })]);
  });
});

describe('redelivery', () => {
  it('sends a delivery that failed for good once more, as its next attempt', async () => {
    await endpoint(receiver.url, ['post.published']);
    const worker = delivery({ retryDelayMs: () => null });
    await worker.dispatch(await event('post.published'));
    const id = scheduled[0]!.deliveryId;
    receiver.answer = (_request, response) => response.writeHead(500).end();
    expect(await worker.attempt(id)).toBe('failed');
    receiver.answer = (_request, response) => response.writeHead(200).end('thanks');

    expect(await worker.redeliver(id)).toBe(true);
    expect(await worker.attempt(scheduled.at(-1)!.deliveryId)).toBe('succeeded');

    expect(await deliveryRow(id)).toMatchObject({
      status: 'succeeded',
      attempts: 2,
      response_body: 'thanks',
    });
    expect(new Set(receiver.requests.map((request) => request.id)).size).toBe(1);
    expect(await worker.redeliver('00000000-0000-4000-8000-000000000000')).toBe(false);
  });
});
