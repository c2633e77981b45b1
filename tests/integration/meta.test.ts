import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { contractViolations } from '../helpers/contract.js';
import { expectProblem } from '../helpers/problems.js';

const t = useTestApp();

const uuidV4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('GET /health', () => {
  it('answers 200 {status: "ok"} as JSON', async () => {
    const res = await t.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json\b/);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('ignores a query string', async () => {
    const res = await t.inject({ method: 'GET', url: '/health?verbose=1&x=%E0%A4%A' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });
});

describe('GET /ready', () => {
  it('answers 200 when the database answers', async () => {
    const res = await t.inject({ method: 'GET', url: '/ready' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json\b/);
    expect(res.json()).toEqual({ status: 'ready', database: 'up' });
  });
});

describe('GET /openapi.json', () => {
  const bundled: unknown = JSON.parse(
    readFileSync(new URL('../../generated/openapi.json', import.meta.url), 'utf8'),
  );

  it('serves the bundled document, unchanged', async () => {
    const res = await t.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json\b/);
    const served = res.json<{ openapi: string }>();
    expect(served.openapi).toMatch(/^3\.1\./);
    expect(served).toStrictEqual(bundled);
  });

  it('serves the same document after requests have gone through the routes', async () => {
    await t.inject({ method: 'GET', url: '/api/users?limit=1' });
    await t.inject({ method: 'POST', url: '/api/users', payload: {} });
    const res = await t.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toStrictEqual(bundled);
  });
});

describe('request ids', () => {
  it.each([
    ['letters and digits', 'abc123XYZ'],
    ['every allowed punctuation mark', 'a.b_c:d-e'],
    ['a uuid', '0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10'],
    ['one character', 'x'],
    ['128 characters', 'r'.repeat(128)],
  ])('echoes a sane X-Request-Id (%s)', async (_name, id) => {
    const res = await t.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': id } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-request-id']).toBe(id);
  });

  it.each([
    ['129 characters', 'r'.repeat(129)],
    ['10 KB', 'r'.repeat(10_240)],
    ['a space', 'abc def'],
    ['a slash', 'abc/def'],
    ['a quote', 'abc"def'],
    ['non-ASCII', 'caf\u00e9'],
    ['a newline-like escape', 'abc%0d%0aSet-Cookie:x=1'],
    ['empty', ''],
  ])('replaces an X-Request-Id with %s by a generated uuid', async (_name, id) => {
    const res = await t.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': id } });
    expect(res.statusCode).toBe(200);
    const given = res.headers['x-request-id'];
    expect(given).toMatch(uuidV4);
    expect(given).not.toBe(id);
  });

  it('replaces a repeated X-Request-Id by a generated uuid', async () => {
    const res = await t.inject({
      method: 'GET',
      url: '/health',
      headers: { 'x-request-id': ['first', 'second'] },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-request-id']).toMatch(uuidV4);
  });

  it('generates a different uuid for every request without one', async () => {
    const ids = new Set<unknown>();
    for (let i = 0; i < 5; i += 1) {
      const res = await t.inject({ method: 'GET', url: '/health' });
      expect(res.headers['x-request-id']).toMatch(uuidV4);
      ids.add(res.headers['x-request-id']);
    }
    expect(ids.size).toBe(5);
  });

  it('sets the request id on error responses too', async () => {
    const notFound = await t.inject({
      method: 'GET',
      url: '/nope',
      headers: { 'x-request-id': 'trace-404' },
    });
    expect(notFound.statusCode).toBe(404);
    expect(notFound.headers['x-request-id']).toBe('trace-404');

    const invalid = await t.inject({
      method: 'GET',
      url: '/api/users?limit=0',
      headers: { 'x-request-id': 'trace-400' },
    });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.headers['x-request-id']).toBe('trace-400');

    const unauthorized = await t.inject({ method: 'GET', url: '/api/auth/me' });
    expect(unauthorized.statusCode).toBe(401);
    expect(unauthorized.headers['x-request-id']).toMatch(uuidV4);
  });

  it('sets the request id on errors raised before routing (bad encoding, long parameter)', async () => {
    // These answers bypass the route hooks, so the contract is checked here by hand.
    const badUrl = await t.inject({
      method: 'GET',
      url: '/api/users/%E0%A4%A',
      headers: { 'x-request-id': 'trace-bad-url' },
    });
    expectProblem(badUrl, 400, 'MALFORMED_REQUEST', '/api/users/%E0%A4%A');
    expect(badUrl.headers['x-request-id']).toBe('trace-bad-url');

    const longUrl = `/api/users/${'a'.repeat(101)}`;
    const tooLong = await t.inject({ method: 'GET', url: longUrl });
    expectProblem(tooLong, 414, 'URI_TOO_LONG', longUrl);
    expect(tooLong.headers['x-request-id']).toMatch(uuidV4);

    for (const res of [badUrl, tooLong]) {
      const violations = contractViolations({
        method: 'GET',
        route: undefined,
        statusCode: res.statusCode,
        contentType: res.headers['content-type'] as string | undefined,
        headers: res.headers,
        payload: res.body,
      });
      expect(violations).toEqual([]);
    }
  });
});

describe('unknown routes', () => {
  it.each([
    ['GET', '/nope'],
    ['GET', '/api'],
    ['GET', '/api/nope'],
    ['GET', '/API/USERS'],
    ['GET', '//api/users'],
    ['GET', '/api/users/0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10/posts'],
    ['POST', '/api/nope'],
    ['DELETE', '/api/users'],
    ['PUT', '/health'],
  ] as const)('%s %s → 404 problem naming the path', async (method, url) => {
    const res = await t.inject({ method, url });
    const problem = expectProblem(res, 404, 'NOT_FOUND', url);
    expect(problem.detail).toContain(url);
  });

  it('leaves the query string out of instance', async () => {
    const res = await t.inject({ method: 'GET', url: '/nope?token=secret&x=1' });
    const problem = expectProblem(res, 404, 'NOT_FOUND', '/nope');
    expect(JSON.stringify(problem)).not.toContain('secret');
  });

  it('answers 404 for a JSON body sent to an unknown route', async () => {
    const res = await t.inject({
      method: 'POST',
      url: '/api/nope',
      payload: { email: 'a@example.com' },
    });
    expectProblem(res, 404, 'NOT_FOUND', '/api/nope');
  });

  it('answers 400 for an unknown path with bad percent-encoding', async () => {
    const res = await t.inject({ method: 'GET', url: '/%E0%A4%A' });
    expectProblem(res, 400, 'MALFORMED_REQUEST', '/%E0%A4%A');
  });
});
