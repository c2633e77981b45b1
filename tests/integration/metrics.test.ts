import { request as httpRequest } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { TEST_JWT_SECRET, signUpAndLogin, useTestApp, type TestApp } from '../helpers/app.js';

/**
 * Metrics in the Prometheus format: what they count, where they are served (the API's port
 * with METRICS_TOKEN, a port of their own with METRICS_PORT, nowhere by default), and that
 * a scrape answers while the database does not.
 */

const TOKEN = 'metrics-test-token-'.padEnd(48, 'k');
const onPostgres = process.env.TEST_DATABASE_URL !== undefined;

async function scrape(t: { inject: TestApp['inject'] }): Promise<string> {
  const response = await t.inject({
    method: 'GET',
    url: '/metrics',
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  expect(response.statusCode, response.body).toBe(200);
  expect(response.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  return response.body;
}

/** The samples of `name` (exactly that name), as `{labels}` text → value. */
function samples(text: string, name: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] === name) found.set(match[2] ?? '', Number(match[3]));
  }
  return found;
}

const value = (text: string, name: string, labels = '') => samples(text, name).get(labels);

describe('metrics on the API port, with METRICS_TOKEN', () => {
  const t = useTestApp({ METRICS_TOKEN: TOKEN, EMAIL_POLL_INTERVAL: '0' });

  it('counts requests by operationId and status: a 200, a 400, a 404 under one label', async () => {
    const before = await scrape(t);
    const count = (text: string, labels: string) => value(text, 'http_requests_total', labels) ?? 0;
    expect((await t.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: '/api/users/not-a-uuid' })).statusCode).toBe(400);
    const missing = `/no/such/path/${Date.now()}`;
    expect((await t.inject({ method: 'GET', url: missing })).statusCode).toBe(404);
    expect((await t.inject({ method: 'DELETE', url: '/health' })).statusCode).toBe(405);

    const after = await scrape(t);
    const grew = (labels: string) => count(after, labels) - count(before, labels);
    expect(grew('{operation="getHealth",status="200"}')).toBe(1);
    expect(grew('{operation="getUser",status="400"}')).toBe(1);
    expect(grew('{operation="(unmatched)",status="404"}')).toBe(1);
    expect(grew('{operation="(unmatched)",status="405"}')).toBe(1);
    // Never the URL of an unmatched request: each would be a series of its own.
    expect(after).not.toContain('/no/such/path');
    expect(after).not.toMatch(/operation="\//);
  });

  it('measures latency by operationId in buckets from 5 ms to 10 s', async () => {
    const before =
      value(await scrape(t), 'http_request_duration_seconds_count', '{operation="getHealth"}') ?? 0;
    for (let i = 0; i < 3; i++) await t.inject({ method: 'GET', url: '/health' });
    const text = await scrape(t);
    const count = value(text, 'http_request_duration_seconds_count', '{operation="getHealth"}');
    expect(count).toBe(before + 3);
    const buckets = [...samples(text, 'http_request_duration_seconds_bucket')]
      .filter(([labels]) => labels.includes('operation="getHealth"'))
      .map(([labels, n]) => [/le="([^"]+)"/.exec(labels)![1], n] as const);
    expect(buckets.map(([le]) => le)).toEqual([
      '0.005',
      '0.01',
      '0.025',
      '0.05',
      '0.1',
      '0.25',
      '0.5',
      '1',
      '2.5',
      '5',
      '10',
      '+Inf',
    ]);
    // Cumulative, and +Inf holds every request.
    const counts = buckets.map(([, n]) => n);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(counts.at(-1)).toBe(count);
    expect(
      value(text, 'http_request_duration_seconds_sum', '{operation="getHealth"}'),
    ).toBeGreaterThan(0);
  });

  it.runIf(onPostgres)(
    'reports the database pool: in use, idle, waiting and its maximum',
    async () => {
      await t.inject({ method: 'GET', url: '/ready' });
      const text = await scrape(t);
      expect(value(text, 'db_pool_connections_max')).toBe(10);
      const inUse = value(text, 'db_pool_connections_in_use');
      const idle = value(text, 'db_pool_connections_idle');
      expect(inUse).toBeGreaterThanOrEqual(0);
      // /ready's connection went back to the pool.
      expect(idle).toBeGreaterThanOrEqual(1);
      expect(inUse! + idle!).toBeLessThanOrEqual(10);
      expect(value(text, 'db_pool_requests_waiting')).toBe(0);
    },
  );

  it.runIf(!onPostgres)(
    'has no pool gauges on the in-memory database, which has no pool',
    async () => {
      const text = await scrape(t);
      expect(value(text, 'db_pool_connections_idle')).toBeUndefined();
      expect(text).toContain('# TYPE db_pool_connections_idle gauge');
    },
  );

  it('requires the token: none, another, a longer or a shorter one, or Basic get 401', async () => {
    for (const authorization of [
      undefined,
      `Bearer ${TOKEN.slice(0, -1)}x`,
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(0, -1)}`,
      'Bearer ',
      `Basic ${Buffer.from(`prometheus:${TOKEN}`).toString('base64')}`,
    ]) {
      const response = await t.inject({
        method: 'GET',
        url: '/metrics',
        headers: authorization === undefined ? {} : { authorization },
      });
      expect(response.statusCode, authorization).toBe(401);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.json()).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
      expect(response.body).not.toContain('http_requests_total');
    }
    // The scheme's name is case-insensitive (RFC 9110).
    const lower = await t.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `bearer ${TOKEN}` },
    });
    expect(lower.statusCode).toBe(200);
  });

  it('has the process metrics: CPU, memory, event loop lag, garbage collection, handles', async () => {
    const text = await scrape(t);
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_gc_duration_seconds',
      'nodejs_active_handles_total',
    ]) {
      expect(text, name).toContain(`# TYPE ${name} `);
    }
  });

  it('has the rate-limit counters, at 0 for every limited operation', async () => {
    const text = await scrape(t);
    expect(value(text, 'http_rate_limit_rejections_total', '{operation="login"}')).toBe(0);
    expect(value(text, 'rate_limit_store_errors_total')).toBe(0);
  });
});

describe('the email outbox backlog', () => {
  let statements = 0;
  const t = useTestApp(
    { METRICS_TOKEN: TOKEN, EMAIL_POLL_INTERVAL: '0' },
    {
      onQuery: (query) => {
        if (/count\(\*\)/.test(query) && query.includes('"email_outbox"')) statements += 1;
      },
    },
  );

  it('counts the emails due and not sent, read at most once every few seconds', async () => {
    // A sign-up queues an email to confirm the address; the delivery loop is off.
    await signUpAndLogin(t);
    await signUpAndLogin(t);
    const [row] = await t.db.sql(
      sql`select count(*)::int as due from email_outbox where sent_at is null and next_attempt_at <= now()`,
    );
    expect(row?.due).toBeGreaterThanOrEqual(2);
    const first = await scrape(t);
    expect(value(first, 'email_outbox_due')).toBe(row?.due);
    expect(value(first, 'email_outbox_due_read_errors_total')).toBe(0);

    // Scraped again at once: the same figure, and no new query.
    const read = statements;
    expect(read).toBeGreaterThanOrEqual(1);
    await signUpAndLogin(t);
    for (let i = 0; i < 5; i++) expect(value(await scrape(t), 'email_outbox_due')).toBe(row?.due);
    expect(statements).toBe(read);
  });
});

describe('rate-limit refusals', () => {
  const t = useTestApp({
    METRICS_TOKEN: TOKEN,
    RATE_LIMIT_AUTH_MAX: '',
    RATE_LIMIT_LOGIN_MAX: '1',
  });

  it('are counted by operationId', async () => {
    const login = () =>
      t.inject({
        method: 'POST',
        url: '/api/auth/login',
        payload: { email: 'nobody@example.com', password: 'not the password' },
      });
    expect((await login()).statusCode).toBe(401);
    expect((await login()).statusCode).toBe(429);
    expect((await login()).statusCode).toBe(429);
    const text = await scrape(t);
    expect(value(text, 'http_rate_limit_rejections_total', '{operation="login"}')).toBe(2);
    expect(value(text, 'http_rate_limit_rejections_total', '{operation="createUser"}')).toBe(0);
    expect(value(text, 'http_requests_total', '{operation="login",status="429"}')).toBe(2);
  });
});

describe('without METRICS_PORT or METRICS_TOKEN', () => {
  const t = useTestApp();

  it('has no metrics endpoint: /metrics is a 404 like any unknown path, token or not', async () => {
    for (const headers of [{}, { authorization: `Bearer ${TOKEN}` }]) {
      const response = await t.inject({ method: 'GET', url: '/metrics', headers });
      expect(response.statusCode).toBe(404);
      expect(response.json()).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    }
    expect(t.app.metrics.enabled).toBe(false);
    expect(await t.app.metrics.listen()).toBeUndefined();
  });
});

/** A plain GET on a real port: status, content type and body. */
function get(port: number, path: string, method = 'GET') {
  return new Promise<{ status: number; type: string | undefined; body: string }>(
    (resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path, method }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }),
        );
      });
      req.on('error', reject);
      req.end();
    },
  );
}

describe('METRICS_PORT: a listener of their own', () => {
  const t = useTestApp({ METRICS_PORT: '0' });
  let address: AddressInfo;

  beforeAll(async () => {
    address = (await t.app.metrics.listen())!;
  });

  it('serves /metrics without a token, on 127.0.0.1 by default', async () => {
    expect(address.address).toBe('127.0.0.1');
    await t.inject({ method: 'GET', url: '/health' });
    const response = await get(address.port, '/metrics');
    expect(response.status).toBe(200);
    expect(response.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(response.body).toMatch(/^http_requests_total\{operation="getHealth",status="200"\} 1$/m);
  });

  it('serves nothing else: other paths 404, other methods 405', async () => {
    for (const path of ['/', '/health', '/api/users', '/metrics/x', '/openapi.json']) {
      expect((await get(address.port, path)).status, path).toBe(404);
    }
    expect((await get(address.port, '/metrics', 'POST')).status).toBe(405);
  });

  it('leaves the API port without /metrics (no METRICS_TOKEN)', async () => {
    const response = await t.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(404);
  });
});

describe('a scrape while the database does not answer', () => {
  let silent: Server;
  const sockets = new Set<Socket>();
  const apps: FastifyInstance[] = [];

  // Once the apps are started: accepts connections and never says a word, so only a
  // timeout ends a query (before, it hangs up at once, so that start-up does not wait).
  let quiet = false;

  beforeAll(async () => {
    silent = createServer((socket) => {
      if (!quiet) socket.destroy();
      else sockets.add(socket);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    // Cut first: the pool's connection attempts fail now rather than at their timeout, and
    // so do those it makes while the apps close (kept, one would hold close() for 30 s).
    quiet = false;
    for (const socket of sockets) socket.destroy();
    await Promise.all(apps.map((app) => app.close()));
    await new Promise((resolve) => silent.close(resolve));
  });

  async function appOn(databaseUrl: string) {
    quiet = false;
    const app = await buildApp(
      loadConfig({
        NODE_ENV: 'test',
        LOG_LEVEL: 'silent',
        JWT_SECRET: TEST_JWT_SECRET,
        DATABASE_URL: databaseUrl,
        // Far longer than a scrape may take.
        DB_CONNECT_TIMEOUT_MS: '30000',
        EMAIL_POLL_INTERVAL: '0',
        METRICS_TOKEN: TOKEN,
      }),
    );
    apps.push(app);
    await app.ready();
    quiet = true;
    return app;
  }

  it.each([
    // Nothing listens on port 1: every connection is refused at once.
    ['refused', () => 'postgres://postgres@127.0.0.1:1/nowhere'],
    ['silent', () => `postgres://postgres@127.0.0.1:${(silent.address() as AddressInfo).port}/x`],
  ])('answers at once (%s): the backlog absent, its read error counted', async (_kind, url) => {
    const app = await appOn(url());
    const started = Date.now();
    const text = await scrape({ inject: (options) => app.inject(options) });
    // The read waits 1 s at most; the bound leaves room for a busy machine.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(value(text, 'email_outbox_due')).toBeUndefined();
    expect(text).toContain('# TYPE email_outbox_due gauge');
    expect(value(text, 'email_outbox_due_read_errors_total')).toBe(1);
    // The failure is remembered for a few seconds: the next scrape does not try again.
    const again = await scrape({ inject: (options) => app.inject(options) });
    expect(value(again, 'email_outbox_due_read_errors_total')).toBe(1);
    expect(value(again, 'http_requests_total', '{operation="getMetrics",status="200"}')).toBe(1);
  });
});
