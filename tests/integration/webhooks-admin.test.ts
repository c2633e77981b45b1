import { sql } from 'drizzle-orm';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { components } from '../../generated/api.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import type { WebhookDeliveriesPort } from '../../src/modules/webhooks/service.js';
import { TEST_JWT_SECRET, signUpAndLogin, useTestApp } from '../helpers/app.js';
import { expectInvalid, expectProblem } from '../helpers/problems.js';

type Endpoint = components['schemas']['WebhookEndpoint'];
type EndpointCreated = components['schemas']['WebhookEndpointCreated'];
type EndpointPage = components['schemas']['WebhookEndpointPage'];
type Delivery = components['schemas']['WebhookDelivery'];
type DeliveryPage = components['schemas']['WebhookDeliveryPage'];
type TestAccepted = components['schemas']['WebhookTestAccepted'];
type Headers = Record<string, string>;

const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';
const ENDPOINT_KEYS = [
  'createdAt',
  'description',
  'disabledReason',
  'enabled',
  'events',
  'id',
  'updatedAt',
  'url',
];
const SECRET = /^whsec_[A-Za-z0-9+/]{43}=$/;

/**
 * The queue's side of redeliver and test, as the composition would give it: it records
 * what it was asked and makes the rows a queued attempt has (the test event and its
 * delivery; a delivery due now).
 */
const asked = { redeliver: [] as string[], sendTest: [] as string[] };
const deliveries: WebhookDeliveriesPort = {
  async redeliver({ id }) {
    asked.redeliver.push(id);
    await t.db.sql(
      sql`update webhook_deliveries set status = 'pending', next_attempt_at = now() where id = ${id}`,
    );
  },
  async sendTest(endpointId) {
    asked.sendTest.push(endpointId);
    const eventId = await insertEvent('webhook.test', endpointId);
    const deliveryId = await insertDelivery(endpointId, { eventId, eventType: 'webhook.test' });
    return { eventId, deliveryId };
  },
};

const t = useTestApp({}, { deps: { webhookDeliveries: deliveries } });

async function insertEvent(type: string, subjectId: string): Promise<string> {
  const [row] = await t.db.sql(
    sql`insert into events (type, subject_id, payload) values (${type}, ${subjectId}, '{}'::jsonb) returning id`,
  );
  return String(row?.id);
}

/** A delivery as the worker would have made it (the API makes none but the test's). */
async function insertDelivery(
  endpointId: string,
  options: { eventId?: string; eventType?: string; status?: string; createdAt?: string } = {},
): Promise<string> {
  const eventType = options.eventType ?? 'post.published';
  const eventId = options.eventId ?? (await insertEvent(eventType, endpointId));
  const [row] = await t.db.sql(sql`
    insert into webhook_deliveries
      (endpoint_id, event_id, event_type, status, attempts, last_attempt_at, response_status,
       response_body, duration_ms, next_attempt_at, created_at)
    values
      (${endpointId}, ${eventId}, ${eventType}, ${options.status ?? 'failed'}, 3, now(), 503,
       'busy', 42, null, coalesce(${options.createdAt ?? null}::timestamptz, now()))
    returning id`);
  return String(row?.id);
}

async function signUpAdmin() {
  const account = await signUpAndLogin(t);
  await t.db.sql(sql`update users set role = 'admin' where id = ${account.user.id}`);
  return account;
}

let admin: Headers;
let user: Headers;
let adminId: string;

beforeAll(async () => {
  const [a, u] = await Promise.all([signUpAdmin(), signUpAndLogin(t)]);
  admin = a.auth;
  adminId = a.user.id;
  user = u.auth;
});

function call(method: InjectOptions['method'], url: string, headers: Headers, payload?: unknown) {
  return t.inject({
    method,
    url,
    headers,
    ...(payload === undefined ? {} : { payload: payload as InjectOptions['payload'] }),
  });
}

async function createEndpoint(body: Record<string, unknown> = {}): Promise<EndpointCreated> {
  const res = await call('POST', '/api/webhooks', admin, {
    url: 'https://hooks.example.com/in',
    events: ['post.published'],
    ...body,
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<EndpointCreated>();
}

async function storedEndpoint(id: string) {
  const [row] = await t.db.sql(sql`
    select secret, previous_secret as "previousSecret",
      to_char(previous_secret_expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "previousSecretExpiresAt",
      created_by as "createdBy", enabled, disabled_reason as "disabledReason"
    from webhook_endpoints where id = ${id}`);
  return row as
    | {
        secret: string;
        previousSecret: string | null;
        previousSecretExpiresAt: string | null;
        createdBy: string | null;
        enabled: boolean;
        disabledReason: string | null;
      }
    | undefined;
}

describe('createWebhook: POST /api/webhooks', () => {
  it('creates an endpoint and shows its secret this once, with its Location', async () => {
    const res = await call('POST', '/api/webhooks', admin, {
      url: 'https://hooks.example.com/blog',
      events: ['post.published', 'post.deleted'],
      description: 'The search index',
    });
    expect(res.statusCode, res.body).toBe(201);
    const created = res.json<EndpointCreated>();
    expect(res.headers.location).toBe(`/api/webhooks/${created.id}`);
    expect(created).toMatchObject({
      url: 'https://hooks.example.com/blog',
      events: ['post.published', 'post.deleted'],
      description: 'The search index',
      enabled: true,
      disabledReason: null,
      previousSecretExpiresAt: null,
    });
    expect(created.secret).toMatch(SECRET);
    expect(Buffer.from(created.secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
    const stored = await storedEndpoint(created.id);
    expect(stored).toMatchObject({ secret: created.secret, createdBy: adminId });
  });

  it('gives every endpoint a secret of its own, and an empty description by default', async () => {
    const [a, b] = await Promise.all([createEndpoint(), createEndpoint()]);
    expect(a.secret).not.toBe(b.secret);
    expect(a.description).toBe('');
  });

  it.each([
    ['not absolute', 'hooks.example.com/in'],
    ['not http(s)', 'ftp://hooks.example.com/in'],
    ['holding a user name and password', 'https://user:pass@hooks.example.com/in'],
    ['holding a user name', 'https://user@hooks.example.com/in'],
  ])('refuses a URL %s with 400 naming /url', async (_, url) => {
    const res = await call('POST', '/api/webhooks', admin, { url, events: ['post.published'] });
    expectInvalid(res, 'body', ['/url']);
  });

  it('accepts plain http outside production', async () => {
    const created = await createEndpoint({ url: 'http://localhost:9999/hook' });
    expect(created.url).toBe('http://localhost:9999/hook');
  });

  it.each([
    ['no event type', []],
    ['an event type twice', ['post.published', 'post.published']],
    ['an unknown event type', ['post.published', 'post.liked']],
  ])('refuses %s with 400 naming /events', async (_, events) => {
    const res = await call('POST', '/api/webhooks', admin, {
      url: 'https://hooks.example.com/in',
      events,
    });
    const problem = expectProblem(res, 400, 'VALIDATION_ERROR');
    expect(problem.errors?.every((e) => e.pointer.startsWith('/events'))).toBe(true);
  });

  it("refuses a field it does not take (a secret of the caller's choosing) with 400", async () => {
    const res = await call('POST', '/api/webhooks', admin, {
      url: 'https://hooks.example.com/in',
      events: ['post.published'],
      secret: 'whsec_chosen',
    });
    expectInvalid(res, 'body', ['/secret']);
  });
});

describe('every webhook operation is for admins only', () => {
  const operations = (
    id: string,
    deliveryId: string,
  ): [InjectOptions['method'], string, unknown][] => [
    ['POST', '/api/webhooks', { url: 'https://hooks.example.com/in', events: ['user.created'] }],
    ['GET', '/api/webhooks', undefined],
    ['GET', `/api/webhooks/${id}`, undefined],
    ['PATCH', `/api/webhooks/${id}`, { enabled: false }],
    ['DELETE', `/api/webhooks/${id}`, undefined],
    ['POST', `/api/webhooks/${id}/rotate-secret`, undefined],
    ['GET', `/api/webhooks/${id}/deliveries`, undefined],
    ['POST', `/api/webhooks/${id}/deliveries/${deliveryId}/redeliver`, undefined],
    ['POST', `/api/webhooks/${id}/test`, undefined],
  ];

  it('answers 401 without a token and 403 to a user, changing nothing', async () => {
    const endpoint = await createEndpoint();
    const deliveryId = await insertDelivery(endpoint.id);
    const before = await storedEndpoint(endpoint.id);
    const askedBefore = { redeliver: [...asked.redeliver], sendTest: [...asked.sendTest] };
    for (const [method, url, payload] of operations(endpoint.id, deliveryId)) {
      expectProblem(await call(method, url, {}, payload), 401, 'UNAUTHORIZED');
      expectProblem(await call(method, url, user, payload), 403, 'FORBIDDEN');
    }
    expect(await storedEndpoint(endpoint.id)).toEqual(before);
    expect(asked).toEqual(askedBefore);
  });
});

describe('getWebhook and listWebhooks', () => {
  it('show an endpoint without its secret', async () => {
    const created = await createEndpoint();
    const res = await call('GET', `/api/webhooks/${created.id}`, admin);
    expect(res.statusCode, res.body).toBe(200);
    const endpoint = res.json<Endpoint>();
    expect(Object.keys(endpoint).sort()).toEqual(ENDPOINT_KEYS);
    const { secret: _secret, previousSecretExpiresAt: _expiry, ...shown } = created;
    expect(endpoint).toEqual(shown);
    expect(res.body).not.toContain(created.secret);

    const list = await call('GET', '/api/webhooks?limit=100', admin);
    expect(list.statusCode, list.body).toBe(200);
    expect(list.body).not.toContain('whsec_');
    for (const item of list.json<EndpointPage>().items) {
      expect(Object.keys(item).sort()).toEqual(ENDPOINT_KEYS);
    }
  });

  it('answers 404 for an id no endpoint has', async () => {
    const res = await call('GET', `/api/webhooks/${UNKNOWN_ID}`, admin);
    expectProblem(res, 404, 'NOT_FOUND');
  });

  it('walks every endpoint once, newest first, a page at a time', async () => {
    for (let i = 0; i < 5; i += 1) await createEndpoint({ description: `page ${i}` });
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `?limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const res = await call('GET', `/api/webhooks${query}`, admin);
      expect(res.statusCode, res.body).toBe(200);
      const page: EndpointPage = res.json<EndpointPage>();
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((item) => item.id));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor !== null && pages < 100);
    const all = await t.db.sql(
      sql`select id from webhook_endpoints order by created_at desc, id desc`,
    );
    expect(seen).toEqual(all.map((row) => row.id));
    expect(pages).toBe(Math.ceil(all.length / 2));
  });

  it('refuses a cursor it never gave out with 400 naming it', async () => {
    const res = await call('GET', '/api/webhooks?cursor=bm9wZQ', admin);
    expectInvalid(res, 'query', ['/cursor']);
  });
});

describe('updateWebhook: PATCH /api/webhooks/{webhookId}', () => {
  it('changes the fields sent, and only those', async () => {
    const created = await createEndpoint({ description: 'kept' });
    const res = await call('PATCH', `/api/webhooks/${created.id}`, admin, {
      url: 'https://other.example.com/in',
      events: ['user.created', 'user.deleted'],
    });
    expect(res.statusCode, res.body).toBe(200);
    const updated = res.json<Endpoint>();
    expect(updated).toMatchObject({
      id: created.id,
      url: 'https://other.example.com/in',
      events: ['user.created', 'user.deleted'],
      description: 'kept',
      enabled: true,
    });
    expect(Date.parse(updated.updatedAt)).toBeGreaterThanOrEqual(Date.parse(created.updatedAt));
    expect(res.body).not.toContain('whsec_');
    expect((await storedEndpoint(created.id))?.secret).toBe(created.secret);
  });

  it("disables an endpoint as the admin's doing, and enables one disabled for failing", async () => {
    const created = await createEndpoint();
    const off = await call('PATCH', `/api/webhooks/${created.id}`, admin, { enabled: false });
    expect(off.statusCode, off.body).toBe(200);
    expect(off.json<Endpoint>()).toMatchObject({ enabled: false, disabledReason: 'admin' });

    await t.db.sql(sql`update webhook_endpoints
      set disabled_reason = 'failing', failing_since = now() where id = ${created.id}`);
    const on = await call('PATCH', `/api/webhooks/${created.id}`, admin, { enabled: true });
    expect(on.statusCode, on.body).toBe(200);
    expect(on.json<Endpoint>()).toMatchObject({ enabled: true, disabledReason: null });
    const [row] = await t.db.sql(
      sql`select failing_since from webhook_endpoints where id = ${created.id}`,
    );
    expect(row?.failing_since).toBeNull();
  });

  it('takes a JSON merge patch too', async () => {
    const created = await createEndpoint();
    const res = await t.inject({
      method: 'PATCH',
      url: `/api/webhooks/${created.id}`,
      headers: { ...admin, 'content-type': 'application/merge-patch+json' },
      payload: JSON.stringify({ description: 'merged' }),
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<Endpoint>().description).toBe('merged');
  });

  it.each([
    ['a URL with a password', { url: 'https://u:p@hooks.example.com/' }, '/url'],
    ['no event type', { events: [] }, '/events'],
    ['an unknown field', { secret: 'whsec_x' }, '/secret'],
  ])('refuses %s with 400, changing nothing', async (_, body, pointer) => {
    const created = await createEndpoint();
    const res = await call('PATCH', `/api/webhooks/${created.id}`, admin, body);
    const problem = expectProblem(res, 400, 'VALIDATION_ERROR');
    expect(problem.errors?.map((e) => e.pointer)).toContain(pointer);
    const after = await call('GET', `/api/webhooks/${created.id}`, admin);
    expect(after.json<Endpoint>().updatedAt).toBe(created.updatedAt);
  });

  it('refuses an empty change with 400', async () => {
    const created = await createEndpoint();
    const res = await call('PATCH', `/api/webhooks/${created.id}`, admin, {});
    expectProblem(res, 400, 'VALIDATION_ERROR');
  });

  it('answers 404 for an id no endpoint has', async () => {
    const res = await call('PATCH', `/api/webhooks/${UNKNOWN_ID}`, admin, { enabled: true });
    expectProblem(res, 404, 'NOT_FOUND');
  });
});

describe('deleteWebhook: DELETE /api/webhooks/{webhookId}', () => {
  it('deletes the endpoint and its deliveries; a second delete is a 404', async () => {
    const created = await createEndpoint();
    await insertDelivery(created.id);
    const res = await call('DELETE', `/api/webhooks/${created.id}`, admin);
    expect(res.statusCode, res.body).toBe(204);
    expect(res.body).toBe('');
    expectProblem(await call('GET', `/api/webhooks/${created.id}`, admin), 404, 'NOT_FOUND');
    const left = await t.db.sql(
      sql`select id from webhook_deliveries where endpoint_id = ${created.id}`,
    );
    expect(left).toEqual([]);
    expectProblem(await call('DELETE', `/api/webhooks/${created.id}`, admin), 404, 'NOT_FOUND');
  });
});

describe('rotateWebhookSecret: POST /api/webhooks/{webhookId}/rotate-secret', () => {
  it('shows a new secret once and keeps the previous one for 24 hours', async () => {
    const created = await createEndpoint();
    const [{ now } = {}] = await t.db.sql(sql`select now() as now`);
    const res = await call('POST', `/api/webhooks/${created.id}/rotate-secret`, admin);
    expect(res.statusCode, res.body).toBe(200);
    const rotated = res.json<EndpointCreated>();
    expect(rotated.secret).toMatch(SECRET);
    expect(rotated.secret).not.toBe(created.secret);

    const stored = await storedEndpoint(created.id);
    expect(stored?.secret).toBe(rotated.secret);
    expect(stored?.previousSecret).toBe(created.secret);
    expect(stored?.previousSecretExpiresAt).toBe(rotated.previousSecretExpiresAt);
    const expires = Date.parse(String(stored?.previousSecretExpiresAt));
    const day = 24 * 3600 * 1000;
    expect(expires).toBeGreaterThanOrEqual(new Date(now as string | Date).getTime() + day);
    expect(expires).toBeLessThan(Date.now() + day + 60_000);

    const shown = await call('GET', `/api/webhooks/${created.id}`, admin);
    expect(shown.body).not.toContain(rotated.secret);
    expect(shown.body).not.toContain(created.secret);
  });

  it('a second rotation keeps the secret it replaces, not the first one', async () => {
    const created = await createEndpoint();
    const first = await call('POST', `/api/webhooks/${created.id}/rotate-secret`, admin);
    const second = await call('POST', `/api/webhooks/${created.id}/rotate-secret`, admin);
    expect(second.statusCode, second.body).toBe(200);
    const stored = await storedEndpoint(created.id);
    expect(stored?.previousSecret).toBe(first.json<EndpointCreated>().secret);
    expect(stored?.secret).toBe(second.json<EndpointCreated>().secret);
  });

  it('answers 404 for an id no endpoint has', async () => {
    const res = await call('POST', `/api/webhooks/${UNKNOWN_ID}/rotate-secret`, admin);
    expectProblem(res, 404, 'NOT_FOUND');
  });
});

describe('listWebhookDeliveries: GET /api/webhooks/{webhookId}/deliveries', () => {
  it("walks the endpoint's deliveries once, newest first, and nobody else's", async () => {
    const [mine, other] = await Promise.all([createEndpoint(), createEndpoint()]);
    const ids: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      // Two share a creation time: the id settles their order.
      const createdAt = `2026-03-0${i === 4 ? 3 : i + 1}T10:00:00.000Z`;
      ids.push(await insertDelivery(mine.id, { createdAt }));
    }
    await insertDelivery(other.id);
    const seen: Delivery[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `?limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const res = await call('GET', `/api/webhooks/${mine.id}/deliveries${query}`, admin);
      expect(res.statusCode, res.body).toBe(200);
      const page: DeliveryPage = res.json<DeliveryPage>();
      seen.push(...page.items);
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor !== null && pages < 100);
    expect(pages).toBe(3);
    const expected = await t.db.sql(sql`select id from webhook_deliveries
      where endpoint_id = ${mine.id} order by created_at desc, id desc`);
    expect(seen.map((d) => d.id)).toEqual(expected.map((row) => row.id));
    expect(new Set(seen.map((d) => d.id))).toEqual(new Set(ids));
    expect(seen[0]).toMatchObject({
      eventType: 'post.published',
      status: 'failed',
      attempts: 3,
      responseStatus: 503,
      responseBody: 'busy',
      durationMs: 42,
      nextAttemptAt: null,
      lastError: null,
    });
  });

  it('answers 404 for an id no endpoint has', async () => {
    const res = await call('GET', `/api/webhooks/${UNKNOWN_ID}/deliveries`, admin);
    expectProblem(res, 404, 'NOT_FOUND');
  });
});

describe('redeliverWebhookDelivery', () => {
  it('queues the delivery again and answers it as queued (202)', async () => {
    const endpoint = await createEndpoint();
    const deliveryId = await insertDelivery(endpoint.id, { status: 'failed' });
    const url = `/api/webhooks/${endpoint.id}/deliveries/${deliveryId}/redeliver`;
    const res = await call('POST', url, admin);
    expect(res.statusCode, res.body).toBe(202);
    expect(asked.redeliver.at(-1)).toBe(deliveryId);
    const delivery = res.json<Delivery>();
    expect(delivery).toMatchObject({ id: deliveryId, status: 'pending' });
    expect(delivery.nextAttemptAt).not.toBeNull();
  });

  it("answers 404 for another endpoint's delivery, an unknown one and an unknown endpoint", async () => {
    const [mine, other] = await Promise.all([createEndpoint(), createEndpoint()]);
    const theirs = await insertDelivery(other.id);
    const count = asked.redeliver.length;
    for (const url of [
      `/api/webhooks/${mine.id}/deliveries/${theirs}/redeliver`,
      `/api/webhooks/${mine.id}/deliveries/${UNKNOWN_ID}/redeliver`,
      `/api/webhooks/${UNKNOWN_ID}/deliveries/${theirs}/redeliver`,
    ]) {
      expectProblem(await call('POST', url, admin), 404, 'NOT_FOUND');
    }
    expect(asked.redeliver).toHaveLength(count);
  });
});

describe('sendWebhookTest: POST /api/webhooks/{webhookId}/test', () => {
  it('queues a test event for the endpoint and names its delivery (202)', async () => {
    const endpoint = await createEndpoint();
    const res = await call('POST', `/api/webhooks/${endpoint.id}/test`, admin);
    expect(res.statusCode, res.body).toBe(202);
    const accepted = res.json<TestAccepted>();
    expect(asked.sendTest.at(-1)).toBe(endpoint.id);
    const list = await call('GET', `/api/webhooks/${endpoint.id}/deliveries`, admin);
    expect(list.json<DeliveryPage>().items).toEqual([
      expect.objectContaining({
        id: accepted.deliveryId,
        eventId: accepted.eventId,
        eventType: 'webhook.test',
      }),
    ]);
  });

  it('answers 404 for an id no endpoint has, asking for nothing', async () => {
    const count = asked.sendTest.length;
    const res = await call('POST', `/api/webhooks/${UNKNOWN_ID}/test`, admin);
    expectProblem(res, 404, 'NOT_FOUND');
    expect(asked.sendTest).toHaveLength(count);
  });
});

describe('in production', () => {
  let production: Awaited<ReturnType<typeof buildApp>>;

  beforeAll(async () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      LOG_LEVEL: 'silent',
      JWT_SECRET: TEST_JWT_SECRET,
      PUBLIC_URL: 'https://blog.example.com',
      RATE_LIMIT_AUTH_MAX: '100000',
      MAX_EVENT_LOOP_DELAY_MS: '0',
      DATABASE_URL: t.db.url,
    });
    production = await buildApp(config, { webhookDeliveries: deliveries });
    await production.ready();
  });

  afterAll(async () => {
    await production.close();
  });

  it('refuses a plain-http URL with 400 naming /url, and takes https', async () => {
    const payload = { url: 'http://hooks.example.com/in', events: ['post.published'] };
    const refused = await production.inject({
      method: 'POST',
      url: '/api/webhooks',
      headers: admin,
      payload,
    });
    const problem = expectInvalid(refused, 'body', ['/url']);
    expect(problem.errors?.[0]?.message).toBe('must be https');

    const created = await production.inject({
      method: 'POST',
      url: '/api/webhooks',
      headers: admin,
      payload: { ...payload, url: 'https://hooks.example.com/in' },
    });
    expect(created.statusCode, created.body).toBe(201);
    const patched = await production.inject({
      method: 'PATCH',
      url: `/api/webhooks/${created.json<Endpoint>().id}`,
      headers: admin,
      payload: { url: 'http://hooks.example.com/in' },
    });
    expectInvalid(patched, 'body', ['/url']);
  });
});
