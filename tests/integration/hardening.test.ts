import { connect, type AddressInfo, type Socket } from 'node:net';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { loadSpec } from '../../src/spec.js';
import { loggerOptions } from '../../src/logger.js';
import { TEST_JWT_SECRET, useTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { logCapture } from '../helpers/logs.js';
import { expectProblem } from '../helpers/problems.js';

/**
 * The server's defences at the HTTP layer: security headers, CORS from an allow-list,
 * 405 for a method a path does not have, limits on slow or oversized requests, and quiet
 * health probes.
 */

type Method = NonNullable<InjectOptions['method']>;
const ID = '00000000-0000-4000-8000-000000000000';
const APP_ORIGIN = 'https://app.example.com';

describe('security headers', () => {
  const t = useTestApp();

  it.each([
    ['a JSON answer', 'GET', '/health', 200],
    ['a 404 problem', 'GET', '/nope', 404],
    ['a 405 problem', 'DELETE', '/health', 405],
    ['a 401 problem', 'GET', '/api/auth/me', 401],
  ] as [string, Method, string, number][])('are on %s', async (_name, method, url, status) => {
    const res = await t.inject({ method, url });
    expect(res.statusCode).toBe(status);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
    expect(res.headers['cross-origin-opener-policy']).toBe('same-origin');
    expect(res.headers['cross-origin-resource-policy']).toBe('same-origin');
    // JSON is never a page: nothing may load, nothing may frame it.
    expect(res.headers['content-security-policy']).toBe(
      "default-src 'none';frame-ancestors 'none'",
    );
  });

  it('leave /docs its own Content-Security-Policy', async () => {
    const res = await t.inject({ method: 'GET', url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });

  it('leave out Strict-Transport-Security unless HSTS_MAX_AGE is set', async () => {
    const res = await t.inject({ method: 'GET', url: '/health' });
    expect(res.headers).not.toHaveProperty('strict-transport-security');
  });
});

describe('Strict-Transport-Security with HSTS_MAX_AGE', () => {
  const t = useTestApp({ HSTS_MAX_AGE: '180d' });

  it('is sent with that max-age, on answers and problems alike', async () => {
    for (const url of ['/health', '/nope']) {
      const res = await t.inject({ method: 'GET', url });
      expect(res.headers['strict-transport-security'], url).toBe(`max-age=${180 * 86400}`);
    }
  });
});

describe('CORS with CORS_ORIGINS', () => {
  const t = useTestApp({ CORS_ORIGINS: `${APP_ORIGIN}, http://localhost:5173` });

  it('lets an allowed origin read answers and the headers the spec declares', async () => {
    const res = await t.inject({ method: 'GET', url: '/health', headers: { origin: APP_ORIGIN } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe(APP_ORIGIN);
    expect(res.headers.vary).toBe('Origin');
    const exposed = String(res.headers['access-control-expose-headers']).split(', ');
    expect(exposed).toEqual(
      expect.arrayContaining(['X-Request-Id', 'ETag', 'Location', 'Retry-After', 'Allow']),
    );
    expect(exposed).not.toContain('Content-Type');
    // Header names only, not the names of the spec's header components.
    expect(exposed).not.toContain('RequestId');
    expect(res.headers).not.toHaveProperty('access-control-allow-credentials');
  });

  it('gives an allowed origin its CORS headers on a problem too', async () => {
    const res = await t.inject({
      method: 'GET',
      url: '/api/auth/me',
      headers: { origin: 'http://localhost:5173' },
    });
    expectProblem(res, 401, 'UNAUTHORIZED');
    expect(res.headers['access-control-allow-origin']).toBe('http://localhost:5173');
  });

  it.each([
    [`/api/users/${ID}`, 'PATCH', 'GET, PATCH, DELETE'],
    [`/api/posts/${ID}`, 'DELETE', 'GET, PATCH, DELETE'],
    ['/api/users', 'POST', 'GET, POST'],
    [`/api/auth/sessions/${ID}`, 'DELETE', 'DELETE'],
  ])('answers a preflight to %s (%s) with the methods of the path', async (url, asked, methods) => {
    const res = await t.inject({
      method: 'OPTIONS',
      url,
      headers: {
        origin: APP_ORIGIN,
        'access-control-request-method': asked,
        'access-control-request-headers': 'authorization, content-type, if-match',
      },
    });
    expect(res.statusCode, res.body).toBe(204);
    expect(res.body).toBe('');
    expect(res.headers['access-control-allow-origin']).toBe(APP_ORIGIN);
    expect(res.headers['access-control-allow-methods']).toBe(methods);
    const headers = String(res.headers['access-control-allow-headers']).toLowerCase().split(', ');
    expect(headers).toEqual(
      expect.arrayContaining(['authorization', 'content-type', 'if-match', 'if-none-match']),
    );
    expect(res.headers['access-control-max-age']).toBe('600');
  });

  it.each([
    ['another site', 'https://evil.example.com'],
    ['a subdomain of an allowed origin', 'https://x.app.example.com'],
    ['an allowed host on another scheme', 'http://app.example.com'],
    ['an allowed host on another port', 'https://app.example.com:8443'],
    ['an allowed origin as a prefix', 'https://app.example.com.evil.example'],
    ['the opaque origin', 'null'],
  ])('gives %s no CORS header, and no preflight', async (_name, origin) => {
    const res = await t.inject({ method: 'GET', url: '/health', headers: { origin } });
    expect(res.statusCode).toBe(200);
    expect(res.headers).not.toHaveProperty('access-control-allow-origin');
    expect(res.headers).not.toHaveProperty('access-control-expose-headers');
    // Still marked as depending on Origin: a cache must not serve it to an allowed origin.
    expect(res.headers.vary).toBe('Origin');

    const preflight = await t.inject({
      method: 'OPTIONS',
      url: '/api/users',
      headers: { origin, 'access-control-request-method': 'POST' },
    });
    expectProblem(preflight, 405, 'METHOD_NOT_ALLOWED', '/api/users');
    expect(preflight.headers).not.toHaveProperty('access-control-allow-origin');
    expect(preflight.headers).not.toHaveProperty('access-control-allow-methods');
  });

  it('answers a preflight to a path the API does not have 404', async () => {
    const res = await t.inject({
      method: 'OPTIONS',
      url: '/api/nope',
      headers: { origin: APP_ORIGIN, 'access-control-request-method': 'GET' },
    });
    expectProblem(res, 404, 'NOT_FOUND', '/api/nope');
    expect(res.headers).not.toHaveProperty('access-control-allow-methods');
  });

  it('answers a plain OPTIONS (no Access-Control-Request-Method) 405', async () => {
    const res = await t.inject({
      method: 'OPTIONS',
      url: '/api/users',
      headers: { origin: APP_ORIGIN },
    });
    expectProblem(res, 405, 'METHOD_NOT_ALLOWED', '/api/users');
    expect(res.headers.allow).toBe('GET, POST');
  });
});

describe('CORS without CORS_ORIGINS', () => {
  const t = useTestApp();

  it('sends no CORS header to any origin, and answers no preflight', async () => {
    const res = await t.inject({ method: 'GET', url: '/health', headers: { origin: APP_ORIGIN } });
    expect(res.statusCode).toBe(200);
    for (const name of Object.keys(res.headers)) expect(name).not.toMatch(/^access-control-/);
    expect(res.headers).not.toHaveProperty('vary');

    const preflight = await t.inject({
      method: 'OPTIONS',
      url: `/api/users/${ID}`,
      headers: { origin: APP_ORIGIN, 'access-control-request-method': 'PATCH' },
    });
    expectProblem(preflight, 405, 'METHOD_NOT_ALLOWED', `/api/users/${ID}`);
    for (const name of Object.keys(preflight.headers)) {
      expect(name).not.toMatch(/^access-control-/);
    }
  });
});

describe('a method a path does not have', () => {
  const t = useTestApp();
  const spec = loadSpec();
  const all = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
  // Every path of the spec, with each method it does not declare.
  const cases = Object.entries(spec.paths).flatMap(([path, item]) => {
    const declared = all.filter((method) => method.toLowerCase() in item);
    const url = path.replace(/\{\w+\}/g, ID);
    return all
      .filter((method) => !declared.includes(method))
      .map((method) => [method, url, declared.join(', ')] as const);
  });

  it('is asked of every path of the spec', () => {
    expect(cases.length).toBeGreaterThan(Object.keys(spec.paths).length * 2);
  });

  it.each(cases)('%s %s → 405, Allow: %s', async (method, url, allow) => {
    const res = await t.inject({ method, url });
    expectProblem(res, 405, 'METHOD_NOT_ALLOWED', url);
    expect(res.headers.allow).toBe(allow);
    expect(res.json<{ detail: string }>().detail).toContain(allow);
  });

  it('is 405 whatever the body, before it is read', async () => {
    const res = await t.inject({
      method: 'PUT',
      url: '/api/users',
      headers: { 'content-type': 'application/json' },
      payload: '{"not json',
    });
    expectProblem(res, 405, 'METHOD_NOT_ALLOWED', '/api/users');
    expect(res.headers.allow).toBe('GET, POST');
  });

  it('is said of a path whose parameter is empty, as the router matches it', async () => {
    // GET /api/users/ is getUser with an empty id (a 400): the path has GET, not PUT.
    const res = await t.inject({ method: 'PUT', url: '/api/users/' });
    expectProblem(res, 405, 'METHOD_NOT_ALLOWED', '/api/users/');
    expect(res.headers.allow).toBe('GET, PATCH, DELETE');
  });

  it.each([
    ['a path with one segment more', 'DELETE', '/health/x'],
    ['another case', 'DELETE', '/API/USERS'],
  ] as [string, Method, string][])('is not said of %s (404)', async (_name, method, url) => {
    const res = await t.inject({ method, url });
    expectProblem(res, 404, 'NOT_FOUND', url);
    expect(res.headers).not.toHaveProperty('allow');
  });
});

/** A raw HTTP/1.1 connection to a listening app; `received` resolves when the server ends it. */
function rawConnection(app: FastifyInstance): { socket: Socket; received: Promise<string> } {
  const { port } = app.server.address() as AddressInfo;
  const socket = connect(port, '127.0.0.1');
  const received = new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('close', () => resolve(text));
    socket.on('error', () => undefined);
  });
  return { socket, received };
}

describe('limits of the HTTP server', () => {
  const t = useTestApp({
    REQUEST_TIMEOUT: '2s',
    HEADERS_TIMEOUT: '1s',
    CONNECTION_TIMEOUT: '3s',
    KEEP_ALIVE_TIMEOUT: '4s',
    MAX_HEADER_SIZE: '4096',
  });

  beforeAll(async () => {
    await t.app.listen({ port: 0, host: '127.0.0.1' });
  });

  it('are the configured ones', () => {
    const server = t.app.server;
    expect(server.requestTimeout).toBe(2000);
    expect(server.headersTimeout).toBe(1000);
    expect(server.timeout).toBe(3000);
    expect(server.keepAliveTimeout).toBe(4000);
    expect((server as unknown as { maxHeaderSize: number }).maxHeaderSize).toBe(4096);
  });

  it('cut off a client that sends its headers too slowly (408)', async () => {
    const { socket, received } = rawConnection(t.app);
    socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n');
    // A header line every 200 ms: the connection is never silent, the headers never end.
    let n = 0;
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write(`X-Drip-${(n += 1)}: 1\r\n`);
    }, 200);
    try {
      const answer = await received;
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      clearInterval(drip);
      socket.destroy();
    }
  }, 15_000);

  it('cut off a client that connects and sends nothing (408)', async () => {
    const { received } = rawConnection(t.app);
    // The headers timeout runs from the connection: silence is a slow header too.
    expect(await received).toMatch(/^HTTP\/1\.1 408 /);
  }, 15_000);

  it('refuse headers larger than MAX_HEADER_SIZE (431), and take those within it', async () => {
    const within = await t.inject({
      method: 'GET',
      url: '/health',
      headers: { 'x-padding': 'x'.repeat(2000) },
    });
    expect(within.statusCode).toBe(200);
    for (const [size, status] of [
      [2000, 200],
      [6000, 431],
    ] as const) {
      const { socket, received } = rawConnection(t.app);
      socket.write(
        `GET /health HTTP/1.1\r\nHost: localhost\r\nX-Padding: ${'x'.repeat(size)}\r\nConnection: close\r\n\r\n`,
      );
      expect(await received, `${size} bytes`).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    }
  }, 15_000);
});

describe('logs of the health probes', () => {
  const { lines, stream } = logCapture();
  let db: TestDatabase;
  let app: FastifyInstance;

  beforeAll(async () => {
    db = await createTestDatabase();
    const config = loadConfig({
      NODE_ENV: 'production',
      PUBLIC_URL: 'https://app.example.test',
      LOG_LEVEL: 'info',
      JWT_SECRET: TEST_JWT_SECRET,
      BCRYPT_COST: '4',
      DATABASE_URL: db.url,
    });
    app = await buildApp(config, {
      logger: { ...(loggerOptions(config) as object), stream },
    });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  const linesOf = (requestId: string) => lines.filter((line) => line.requestId === requestId);

  it.each(['/health', '/ready'])('hold no line for GET %s at info', async (url) => {
    const requestId = `probe-${url.slice(1)}-${Date.now()}`;
    const res = await app.inject({ method: 'GET', url, headers: { 'x-request-id': requestId } });
    expect(res.statusCode).toBe(200);
    expect(linesOf(requestId)).toEqual([]);
  });

  it('hold the lines of other requests', async () => {
    const requestId = `not-a-probe-${Date.now()}`;
    const res = await app.inject({
      method: 'GET',
      url: '/openapi.json',
      headers: { 'x-request-id': requestId },
    });
    expect(res.statusCode).toBe(200);
    const messages = linesOf(requestId).map((line) => line.msg);
    // One line per request, with what it was and how it ended.
    expect(messages).toEqual(['request completed']);
    expect(linesOf(requestId)[0]).toMatchObject({
      req: { method: 'GET', url: '/openapi.json', remoteAddress: expect.any(String) },
      res: { statusCode: 200 },
      responseTime: expect.any(Number),
    });
  });

  it('still hold a probe path asked with another method', async () => {
    const requestId = `probe-method-${Date.now()}`;
    const res = await app.inject({
      method: 'DELETE',
      url: '/health',
      headers: { 'x-request-id': requestId },
    });
    expect(res.statusCode).toBe(405);
    expect(linesOf(requestId).length).toBeGreaterThan(0);
  });
});
