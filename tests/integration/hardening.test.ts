import { connect, type AddressInfo, type Socket } from 'node:net';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { loadSpec } from '../../src/spec.js';
import { loggerOptions } from '../../src/logger.js';
import { TEST_JWT_SECRET, useTestApp } from '../helpers/app.js';
import { contractViolations } from '../helpers/contract.js';
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
    [`/api/users/${ID}`, 'PATCH', 'GET, HEAD, PATCH, DELETE'],
    [`/api/posts/${ID}`, 'DELETE', 'GET, HEAD, PATCH, DELETE'],
    ['/api/users', 'POST', 'GET, HEAD, POST'],
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
    expect(res.headers.allow).toBe('GET, HEAD, POST');
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
    // A path with GET has HEAD too.
    const allowed = declared.flatMap((method) => (method === 'GET' ? ['GET', 'HEAD'] : [method]));
    const url = path.replace(/\{\w+\}/g, ID);
    return all
      .filter((method) => !declared.includes(method))
      .map((method) => [method, url, allowed.join(', ')] as const);
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
    expect(res.headers.allow).toBe('GET, HEAD, POST');
  });

  it('is said of a path whose parameter is empty, as the router matches it', async () => {
    // GET /api/users/ is getUser with an empty id (a 400): the path has GET, not PUT.
    const res = await t.inject({ method: 'PUT', url: '/api/users/' });
    expectProblem(res, 405, 'METHOD_NOT_ALLOWED', '/api/users/');
    expect(res.headers.allow).toBe('GET, HEAD, PATCH, DELETE');
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

describe('HEAD', () => {
  const METRICS_TOKEN = 'metrics-token-for-the-head-tests-0123456789';
  const admin = { email: 'head-admin@example.com', password: 'correct horse battery staple' };
  const t = useTestApp({
    METRICS_TOKEN,
    ADMIN_EMAIL: admin.email,
    ADMIN_PASSWORD: admin.password,
  });
  const spec = loadSpec();
  let auth: Record<string, string>;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    const login = await t.inject({ method: 'POST', url: '/api/auth/login', payload: admin });
    expect(login.statusCode, login.body).toBe(200);
    auth = { authorization: `Bearer ${login.json<{ accessToken: string }>().accessToken}` };
    const me = await t.inject({ method: 'GET', url: '/api/auth/me', headers: auth });
    ids.user = me.json<{ id: string }>().id;
    const post = await t.inject({
      method: 'POST',
      url: '/api/posts',
      headers: auth,
      payload: { title: 'Heads up', content: 'Some words.' },
    });
    expect(post.statusCode, post.body).toBe(201);
    ids.post = post.json<{ id: string }>().id;
    ids.slug = post.json<{ slug: string }>().slug;
    const webhook = await t.inject({
      method: 'POST',
      url: '/api/webhooks',
      headers: auth,
      payload: { url: 'https://hooks.example.com/head', events: ['post.published'] },
    });
    expect(webhook.statusCode, webhook.body).toBe(201);
    ids.webhook = webhook.json<{ id: string }>().id;
  });

  /** Every GET operation of the spec, with values that make it succeed. */
  const gets = Object.entries(spec.paths)
    .filter(([, item]) => 'get' in item)
    .map(([path]) => path);

  const urlOf = (path: string) =>
    path.replace(/\{(\w+)\}/g, (_match, name: string) => {
      if (name === 'code') return 'rate-limited';
      if (name === 'slug') return ids.slug!;
      if (name === 'webhookId') return ids.webhook!;
      return path.startsWith('/api/posts/') ? ids.post! : ids.user!;
    });

  // Headers whose value may differ between two requests in a row (the metrics' text too).
  const varying = new Set(['date', 'x-ratelimit-remaining', 'x-ratelimit-reset']);
  const comparableOf = (path: string, headers: Record<string, unknown>) => {
    const { 'content-length': length, ...others } = comparable(headers);
    return path === '/metrics' ? others : { ...others, 'content-length': length };
  };
  const comparable = (headers: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(headers).filter(([name]) => !varying.has(name)));

  it('is asked of every GET operation of the spec', () => {
    expect(gets.length).toBeGreaterThanOrEqual(14);
  });

  it.each(gets)('HEAD %s: the status and headers of GET, no body', async (path) => {
    const url = urlOf(path);
    const headers = {
      ...(path === '/metrics' ? { authorization: `Bearer ${METRICS_TOKEN}` } : auth),
      'x-request-id': `head-${path.replace(/\W/g, '')}`,
    };
    const get = await t.inject({ method: 'GET', url, headers });
    const head = await t.inject({ method: 'HEAD', url, headers });
    expect(get.statusCode, `${url}: ${get.body.slice(0, 200)}`).toBeLessThan(300);
    expect(head.statusCode, url).toBe(get.statusCode);
    expect(head.body).toBe('');
    expect(comparableOf(path, head.headers)).toEqual(comparableOf(path, get.headers));
  });

  it.each([
    ['a problem', `/api/posts/${ID}`, 404],
    ['a revalidation', 'etag', 304],
    ['a refusal without a token', '/api/auth/me', 401],
  ])('answers HEAD with %s as GET does', async (_name, target, status) => {
    let url = target;
    let headers: Record<string, string> = target === '/api/auth/me' ? {} : auth;
    if (target === 'etag') {
      url = `/api/posts/${ids.post}`;
      const first = await t.inject({ method: 'GET', url, headers: auth });
      headers = { ...auth, 'if-none-match': String(first.headers.etag) };
    }
    const get = await t.inject({ method: 'GET', url, headers });
    const head = await t.inject({ method: 'HEAD', url, headers });
    expect(get.statusCode).toBe(status);
    expect(head.statusCode).toBe(status);
    expect(head.body).toBe('');
    expect(comparable(head.headers)).toEqual({
      ...comparable(get.headers),
      'x-request-id': head.headers['x-request-id'],
    });
  });

  it.each(['/docs', '/docs/', '/docs/static/swagger-initializer.js', '/'])(
    'answers HEAD %s (the reference and its assets) as GET',
    async (url) => {
      const get = await t.inject({ method: 'GET', url });
      const head = await t.inject({ method: 'HEAD', url });
      expect(get.statusCode, url).toBeLessThan(400);
      expect(head.statusCode, url).toBe(get.statusCode);
      expect(head.body).toBe('');
      expect(head.headers['content-type']).toBe(get.headers['content-type']);
      expect(head.headers.location).toBe(get.headers.location);
    },
  );

  it('sends the length of the GET body over a socket, and no body', async () => {
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const get = await t.inject({ method: 'GET', url: '/openapi.json' });
    const { socket, received } = rawConnection(t.app);
    socket.write('HEAD /openapi.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    const answer = await received;
    const [head, body] = answer.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    expect(head).toMatch(
      new RegExp(`\\r\\ncontent-length: ${Buffer.byteLength(get.body)}\\r\\n`, 'i'),
    );
    expect(body).toBe('');
  });

  it('is refused (405) where the path has no GET, with Allow', async () => {
    const res = await t.inject({ method: 'HEAD', url: '/api/auth/login' });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('POST');
    expect(res.body).toBe('');
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

/** An answer read off a raw connection: its status, headers (names in lower case) and body. */
function parseAnswer(text: string) {
  const end = text.indexOf('\r\n\r\n');
  const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { statusCode: Number(statusLine.split(' ')[1]), headers, body: text.slice(end + 4) };
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * A problem answered before any route was chosen (by Node's HTTP parser or its timers): a
 * status of x-unrouted-responses with its body and headers, a request id of its own, and
 * the connection closed after it.
 */
function expectUnroutedProblem(text: string, status: number, code: string) {
  const answer = parseAnswer(text);
  expect(answer.statusCode, text).toBe(status);
  expect(answer.headers['content-type']).toMatch(/^application\/problem\+json\b/);
  expect(answer.headers['x-request-id']).toMatch(uuid);
  expect(answer.headers.connection).toBe('close');
  expect(Number(answer.headers['content-length'])).toBe(Buffer.byteLength(answer.body));
  // The security headers of every response.
  expect(answer.headers['x-content-type-options']).toBe('nosniff');
  expect(answer.headers['content-security-policy']).toBe(
    "default-src 'none';frame-ancestors 'none'",
  );
  const problem = JSON.parse(answer.body) as Record<string, unknown>;
  expect(problem).toMatchObject({
    type: `/problems/${code.toLowerCase().replace(/_/g, '-')}`,
    status,
    code,
    detail: expect.any(String),
  });
  expect(
    contractViolations({
      method: 'GET',
      route: undefined,
      statusCode: answer.statusCode,
      contentType: answer.headers['content-type'],
      headers: answer.headers,
      payload: answer.body,
    }),
  ).toEqual([]);
  return problem;
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

  it('cut off a client that sends its headers too slowly (408 problem)', async () => {
    const { socket, received } = rawConnection(t.app);
    socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n');
    // A header line every 200 ms: the connection is never silent, the headers never end.
    let n = 0;
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write(`X-Drip-${(n += 1)}: 1\r\n`);
    }, 200);
    try {
      expectUnroutedProblem(await received, 408, 'REQUEST_TIMEOUT');
    } finally {
      clearInterval(drip);
      socket.destroy();
    }
  }, 15_000);

  it('cut off a client that connects and sends nothing (408 problem)', async () => {
    const { received } = rawConnection(t.app);
    // The headers timeout runs from the connection: silence is a slow header too.
    expectUnroutedProblem(await received, 408, 'REQUEST_TIMEOUT');
  }, 15_000);

  it('cut off a client whose body does not come in time (408 problem)', async () => {
    const { socket, received } = rawConnection(t.app);
    socket.write(
      'POST /api/users HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{',
    );
    expectUnroutedProblem(await received, 408, 'REQUEST_TIMEOUT');
  }, 15_000);

  it('refuse headers larger than MAX_HEADER_SIZE (431 problem), and take those within it', async () => {
    const within = await t.inject({
      method: 'GET',
      url: '/health',
      headers: { 'x-padding': 'x'.repeat(2000) },
    });
    expect(within.statusCode).toBe(200);
    const send = (size: number) => {
      const { socket, received } = rawConnection(t.app);
      socket.write(
        `GET /health HTTP/1.1\r\nHost: localhost\r\nX-Padding: ${'x'.repeat(size)}\r\nConnection: close\r\n\r\n`,
      );
      return received;
    };
    expect(await send(2000)).toMatch(/^HTTP\/1\.1 200 /);
    const problem = expectUnroutedProblem(await send(6000), 431, 'HEADERS_TOO_LARGE');
    expect(problem.detail).toContain('4096');
  }, 15_000);
});

describe('requests Node.js cannot read', () => {
  const t = useTestApp();

  beforeAll(async () => {
    await t.app.listen({ port: 0, host: '127.0.0.1' });
  });

  const answerTo = (raw: string) => {
    const { socket, received } = rawConnection(t.app);
    socket.write(raw);
    return received;
  };

  it.each([
    ['a request line that is not HTTP', 'NOT HTTP AT ALL\r\n\r\n'],
    ['an unknown method', 'BREW /health HTTP/1.1\r\nHost: localhost\r\n\r\n'],
    [
      'a space in a header name',
      'GET /health HTTP/1.1\r\nHost: localhost\r\nBad Header: 1\r\n\r\n',
    ],
    [
      'a Content-Length that is not a number',
      'GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n',
    ],
    [
      'both Content-Length and Transfer-Encoding',
      'POST /api/users HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    [
      'a chunk size that is not hexadecimal',
      'POST /api/users HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n',
    ],
    ['an HTTP/1.1 request without Host', 'GET /health HTTP/1.1\r\n\r\n'],
  ])('answer %s with a 400 problem', async (_name, raw) => {
    expectUnroutedProblem(await answerTo(raw), 400, 'MALFORMED_REQUEST');
  });

  it('answer chunk extensions larger than Node.js takes with a 413 problem', async () => {
    const raw =
      'POST /api/users HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
      `Transfer-Encoding: chunked\r\n\r\n1;ext=${'a'.repeat(20_000)}`;
    expectUnroutedProblem(await answerTo(raw), 413, 'PAYLOAD_TOO_LARGE');
  });

  it('still answer an HTTP/1.0 request without Host', async () => {
    expect(await answerTo('GET /health HTTP/1.0\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 /);
  });
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

  it('hold a line with the request id of a request Node.js could not read', async () => {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { socket, received } = rawConnection(app);
    socket.write('NOT HTTP AT ALL\r\n\r\n');
    const requestId = parseAnswer(await received).headers['x-request-id'];
    expect(requestId).toMatch(uuid);
    expect(linesOf(requestId!)).toEqual([
      expect.objectContaining({ level: 30, status: 400, code: 'MALFORMED_REQUEST' }),
    ]);
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
