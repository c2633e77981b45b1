import { readFileSync } from 'node:fs';
import type { InjectOptions } from 'fastify';
import { describe, expect, it } from 'vitest';
import type { components } from '../../generated/api.js';
import { signUpAndLogin, useTestApp } from '../helpers/app.js';
import { contractViolations } from '../helpers/contract.js';
import { expectInvalid, expectProblem } from '../helpers/problems.js';

type Problem = components['schemas']['Problem'];
type ProblemCode = components['schemas']['ProblemCode'];
type ProblemType = components['schemas']['ProblemType'];

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

  it('sets the request id on errors raised before routing (bad encoding)', async () => {
    // This answer bypasses the route hooks, so the contract is checked here by hand.
    const badUrl = await t.inject({
      method: 'GET',
      url: '/api/users/%E0%A4%A',
      headers: { 'x-request-id': 'trace-bad-url' },
    });
    expectProblem(badUrl, 400, 'MALFORMED_REQUEST', '/api/users/%E0%A4%A');
    expect(badUrl.headers['x-request-id']).toBe('trace-bad-url');
    const violations = contractViolations({
      method: 'GET',
      route: undefined,
      statusCode: badUrl.statusCode,
      contentType: badUrl.headers['content-type'] as string | undefined,
      headers: badUrl.headers,
      payload: badUrl.body,
    });
    expect(violations).toEqual([]);
  });

  it('sets the request id on an over-long path parameter (414)', async () => {
    const longUrl = `/api/users/${'a'.repeat(256)}`;
    const tooLong = await t.inject({ method: 'GET', url: longUrl });
    expectProblem(tooLong, 414, 'URI_TOO_LONG', longUrl);
    expect(tooLong.headers['x-request-id']).toMatch(uuidV4);
  });
});

describe('unknown routes', () => {
  it.each([
    ['GET', '/nope'],
    ['GET', '/api'],
    ['GET', '/api/nope'],
    ['GET', '/API/USERS'],
    ['GET', '//api/users'],
    ['GET', '/api/users/0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10/comments'],
    ['POST', '/api/nope'],
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

describe('GET /problems/{code}', () => {
  const kebab = (code: string) => code.toLowerCase().replace(/_/g, '-');

  /** Follows a problem's `type` through the API and checks the explanation agrees with it. */
  async function expectTypeResolves(problem: Problem): Promise<ProblemType> {
    const res = await t.inject({ method: 'GET', url: problem.type });
    expect(res.statusCode, `${problem.type}: ${res.body}`).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json\b/);
    const explanation = res.json<ProblemType>();
    expect(explanation).toMatchObject({
      type: problem.type,
      code: problem.code,
      status: problem.status,
      title: problem.title,
    });
    return explanation;
  }

  it('explains every code of the Problem schema, at the URL its problems name', async () => {
    const spec = await t.inject({ method: 'GET', url: '/openapi.json' });
    const codes = spec.json<{
      components: { schemas: { ProblemCode: { enum: ProblemCode[] } } };
    }>().components.schemas.ProblemCode.enum;
    expect(codes.length).toBeGreaterThan(10);
    for (const code of codes) {
      const url = `/problems/${kebab(code)}`;
      const res = await t.inject({ method: 'GET', url });
      expect(res.statusCode, `${url}: ${res.body}`).toBe(200);
      const explanation = res.json<ProblemType>();
      expect(explanation).toEqual({
        type: url,
        code,
        status: expect.any(Number),
        title: expect.any(String),
        description: expect.any(String),
      });
      expect(explanation.status).toBeGreaterThanOrEqual(400);
      expect(explanation.description.length, url).toBeGreaterThan(80);
    }
  });

  it('resolves the type of the problems the server answers with, title and status included', async () => {
    const owner = await signUpAndLogin(t);
    const other = await signUpAndLogin(t);
    const requests: [ProblemCode, InjectOptions & { url: string }][] = [
      ['NOT_FOUND', { method: 'GET', url: '/nope' }],
      ['NOT_FOUND', { method: 'GET', url: '/problems/out-of-coffee' }],
      ['VALIDATION_ERROR', { method: 'GET', url: '/api/users?limit=0' }],
      [
        'MALFORMED_REQUEST',
        {
          method: 'POST',
          url: '/api/auth/login',
          headers: { 'content-type': 'application/json' },
          payload: '{"email":',
        },
      ],
      ['UNAUTHORIZED', { method: 'GET', url: '/api/auth/me' }],
      [
        'INVALID_CREDENTIALS',
        {
          method: 'POST',
          url: '/api/auth/login',
          payload: { email: owner.user.email, password: 'not the password' },
        },
      ],
      [
        'FORBIDDEN',
        {
          method: 'PATCH',
          url: `/api/users/${other.user.id}`,
          headers: owner.auth,
          payload: { firstName: 'Mallory' },
        },
      ],
      [
        'CONFLICT',
        {
          method: 'POST',
          url: '/api/users',
          payload: { email: owner.user.email, username: 'someone_new', password: 'long enough' },
        },
      ],
      [
        'PAYLOAD_TOO_LARGE',
        {
          method: 'POST',
          url: '/api/users',
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify({ email: 'x'.repeat(2 * 1024 * 1024) }),
        },
      ],
      ['URI_TOO_LONG', { method: 'GET', url: `/api/users/${'a'.repeat(256)}` }],
      [
        'UNSUPPORTED_MEDIA_TYPE',
        {
          method: 'POST',
          url: '/api/users',
          headers: { 'content-type': 'text/plain' },
          payload: 'hello',
        },
      ],
    ];
    for (const [code, request] of requests) {
      const res = await t.inject(request);
      const problem = res.json<Problem>();
      expect(problem.code, `${request.method} ${request.url}: ${res.body}`).toBe(code);
      await expectTypeResolves(problem);
    }
  });

  it('answers 404 NOT_FOUND to a well-formed code that names no kind of problem', async () => {
    for (const url of ['/problems/out-of-coffee', '/problems/validation', '/problems/errors']) {
      const res = await t.inject({ method: 'GET', url });
      const problem = expectProblem(res, 404, 'NOT_FOUND', url);
      expect(problem.detail).toMatch(/problem type/i);
    }
  });

  it.each([
    ['the code itself', 'VALIDATION_ERROR'],
    ['capitals', 'Validation-Error'],
    ['an underscore', 'validation_error'],
    ['a leading dash', '-validation-error'],
    ['a trailing dash', 'validation-error-'],
    ['two dashes in a row', 'validation--error'],
    ['a digit', 'error-404'],
    ['a space', 'not%20found'],
    ['non-ASCII', 'caf%C3%A9'],
    ['65 characters', 'a'.repeat(65)],
  ])('answers 400 (location path) to a code with %s', async (_name, code) => {
    const res = await t.inject({ method: 'GET', url: `/problems/${code}` });
    expectInvalid(res, 'path', ['/code']);
  });

  it('answers 414 URI_TOO_LONG to a code over 255 characters', async () => {
    const url = `/problems/${'a'.repeat(256)}`;
    const res = await t.inject({ method: 'GET', url });
    expectProblem(res, 414, 'URI_TOO_LONG', url);
    // The problem pages are not rate limited.
    expect(res.headers).not.toHaveProperty('x-ratelimit-limit');
  });
});
