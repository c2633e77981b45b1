import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import type { OpenApiDocument } from '../../src/http/contract.js';
import { loadSpec } from '../../src/spec.js';
import { TEST_JWT_SECRET } from '../helpers/app.js';
import { contractViolations } from '../helpers/contract.js';
import { secretsIn } from '../helpers/observe.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

/**
 * A handler that answers outside the contract: here the spec's PublicUser loses `lastName`
 * while the code still sends it. In development and tests that is a loud 500; in
 * production the spec's schema serialises the reply and the undeclared field never leaves.
 */
function specWithoutLastName(): OpenApiDocument {
  const spec = structuredClone(loadSpec()) as OpenApiDocument & {
    components: {
      schemas: Record<string, { required: string[]; properties: Record<string, unknown> }>;
    };
  };
  const publicUser = spec.components.schemas.PublicUser!;
  publicUser.required = publicUser.required.filter((name) => name !== 'lastName');
  delete publicUser.properties.lastName;
  return spec;
}

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

async function appWith(responseValidation: boolean) {
  const config = loadConfig({
    NODE_ENV: responseValidation ? 'test' : 'production',
    PUBLIC_URL: 'https://app.example.test',
    LOG_LEVEL: 'silent',
    JWT_SECRET: TEST_JWT_SECRET,
    RESPONSE_VALIDATION: String(responseValidation),
    BCRYPT_COST: '4',
    DATABASE_URL: db.url,
  });
  return buildApp(config, {
    spec: specWithoutLastName(),
  });
}

describe('responses outside the contract', () => {
  it('fail loudly when response validation is on (development, tests)', async () => {
    const app = await appWith(true);
    const created = await app.inject({
      method: 'POST',
      url: '/api/users',
      payload: {
        email: 'rv-on@example.com',
        username: 'rv_on',
        password: 'long enough password',
        lastName: 'Lovelace',
      },
    });
    expect(created.statusCode).toBe(201);
    const response = await app.inject({
      method: 'GET',
      url: `/api/users/${created.json<{ id: string }>().id}`,
    });
    expect(response.statusCode).toBe(500);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.json()).toMatchObject({ code: 'INTERNAL_ERROR', status: 500 });
    expect(response.body).not.toContain('lastName');
    await app.close();
  });

  it('never leave the server when validation is off (production): the serialiser drops them', async () => {
    const app = await appWith(false);
    const created = await app.inject({
      method: 'POST',
      url: '/api/users',
      payload: {
        email: 'rv-off@example.com',
        username: 'rv_off',
        password: 'long enough password',
        lastName: 'Lovelace',
      },
    });
    const response = await app.inject({
      method: 'GET',
      url: `/api/users/${created.json<{ id: string }>().id}`,
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).not.toHaveProperty('lastName');
    expect(response.json()).toMatchObject({ username: 'rv_off' });
    await app.close();
  });
});

/** The spec without getUser's 404, while the handler still answers 404 for a missing user. */
function specWithoutNotFoundOnGetUser(): OpenApiDocument {
  const spec = structuredClone<OpenApiDocument>(loadSpec());
  const getUser = spec.paths['/api/users/{id}']!.get as { responses: Record<string, unknown> };
  delete getUser.responses['404'];
  return spec;
}

describe('statuses outside the contract', () => {
  const missing = '/api/users/0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10';
  const appOn = async (responseValidation: boolean) =>
    buildApp(
      loadConfig({
        NODE_ENV: responseValidation ? 'test' : 'production',
        PUBLIC_URL: 'https://app.example.test',
        LOG_LEVEL: 'silent',
        JWT_SECRET: TEST_JWT_SECRET,
        RESPONSE_VALIDATION: String(responseValidation),
        DATABASE_URL: db.url,
      }),
      { spec: specWithoutNotFoundOnGetUser() },
    );

  it('are a loud 500 when response validation is on, even for a well-formed problem', async () => {
    const app = await appOn(true);
    const response = await app.inject({ method: 'GET', url: missing });
    expect(response.statusCode).toBe(500);
    expect(response.json()).toMatchObject({ code: 'INTERNAL_ERROR', status: 500 });
    await app.close();
  });

  it('go out as they are when it is off (production), so only the compiler stands guard', async () => {
    const app = await appOn(false);
    const response = await app.inject({ method: 'GET', url: missing });
    expect(response.statusCode).toBe(404);
    await app.close();
  });
});

describe('the test suite’s own contract check', () => {
  const requestId = { 'x-request-id': '0d9f6a8e-3c1b-4f7a-9e2d-5b8c7a6f1e40' };
  const base = {
    method: 'GET',
    contentType: 'application/json; charset=utf-8',
    headers: requestId,
  };
  // Every response of an API operation carries its rate-limit budget.
  const budget = {
    'x-ratelimit-limit': '3000',
    'x-ratelimit-remaining': '2999',
    'x-ratelimit-reset': '60',
  };
  const api = { ...base, headers: { ...requestId, ...budget } };
  // What getUser's 200 must carry besides (its entity tag and who may keep it).
  const profile = {
    ...api,
    route: '/api/users/:id',
    headers: { ...api.headers, etag: '"0123456789abcdef"', 'cache-control': 'public, no-cache' },
  };
  const publicUser = {
    id: '0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10',
    username: 'ada',
    firstName: null,
    lastName: null,
    createdAt: '2026-01-15T09:30:00.000Z',
  };

  it('accepts a response the spec declares', () => {
    expect(
      contractViolations({ ...profile, statusCode: 200, payload: JSON.stringify(publicUser) }),
    ).toEqual([]);
  });

  it('catches an undeclared status, a wrong content type, an extra field and a missing one', () => {
    const problem = JSON.stringify({
      type: '/problems/x',
      title: 'x',
      status: 409,
      code: 'CONFLICT',
    });
    expect(
      contractViolations({
        ...api,
        route: '/api/users/:id',
        statusCode: 409,
        contentType: 'application/problem+json',
        payload: problem,
      }),
    ).toEqual([expect.stringMatching(/status not declared/)]);
    expect(
      contractViolations({ ...api, route: '/api/users/:id', statusCode: 404, payload: problem }),
    ).toEqual([expect.stringMatching(/content type application\/json not declared/)]);
    expect(
      contractViolations({
        ...profile,
        statusCode: 200,
        payload: JSON.stringify({ ...publicUser, email: 'ada@example.com' }),
      }),
    ).toEqual([expect.stringMatching(/must NOT have additional properties/)]);
    const { username: _missing, ...withoutUsername } = publicUser;
    expect(
      contractViolations({
        ...profile,
        statusCode: 200,
        payload: JSON.stringify(withoutUsername),
      }),
    ).toEqual([expect.stringMatching(/must have required property 'username'/)]);
  });

  it('accepts declared headers in any case, and the transport headers', () => {
    expect(
      contractViolations({
        ...api,
        route: '/api/users/:id',
        statusCode: 200,
        headers: {
          'X-Request-ID': 'trace-1',
          ETAG: '"0123456789abcdef"',
          'Cache-control': 'public, no-cache',
          'X-RateLimit-Limit': '3000',
          'X-RATELIMIT-REMAINING': '2999',
          'x-ratelimit-reset': '60',
          'Content-Type': 'application/json; charset=utf-8',
          'content-length': '120',
          date: 'Sun, 29 Nov 2026 20:34:27 GMT',
          connection: 'keep-alive',
          'keep-alive': 'timeout=72',
        },
        payload: JSON.stringify(publicUser),
      }),
    ).toEqual([]);
  });

  it('catches an undeclared header, even one another operation declares', () => {
    const getUser = { ...profile, statusCode: 200 };
    const payload = JSON.stringify(publicUser);
    expect(
      contractViolations({
        ...getUser,
        headers: { ...getUser.headers, 'X-Powered-By': 'x' },
        payload,
      }),
    ).toEqual([expect.stringMatching(/header x-powered-by is not declared/)]);
    // The rate-limit headers belong to the API operations: the probes are not limited.
    expect(
      contractViolations({
        ...base,
        route: '/health',
        statusCode: 200,
        headers: { ...requestId, 'x-ratelimit-limit': '10' },
        payload: JSON.stringify({ status: 'ok' }),
      }),
    ).toEqual([expect.stringMatching(/header x-ratelimit-limit is not declared/)]);
  });

  it('catches a required header that is missing, and a header value outside its schema', () => {
    const problem = JSON.stringify({
      type: '/problems/invalid-credentials',
      title: 'Invalid credentials',
      status: 401,
      code: 'INVALID_CREDENTIALS',
    });
    const login = {
      ...base,
      method: 'POST',
      route: '/api/auth/login',
      statusCode: 401,
      contentType: 'application/problem+json',
      payload: problem,
    };
    const limits = {
      'x-ratelimit-limit': '10',
      'x-ratelimit-remaining': '9',
      'x-ratelimit-reset': '60',
    };
    expect(contractViolations({ ...login, headers: { ...requestId, ...limits } })).toEqual([]);
    expect(contractViolations({ ...login, headers: limits })).toEqual([
      expect.stringMatching(/required header x-request-id is missing/),
    ]);
    expect(
      contractViolations({
        ...login,
        headers: { ...requestId, ...limits, 'x-ratelimit-remaining': 'many' },
      }),
    ).toEqual([expect.stringMatching(/header x-ratelimit-remaining: .*must be integer/)]);
    expect(
      contractViolations({ ...login, headers: { ...limits, 'x-request-id': 'not sane' } }),
    ).toEqual([expect.stringMatching(/header x-request-id: .*must match pattern/)]);
  });

  it('holds unrouted answers to the responses the spec declares for them', () => {
    const notFound = {
      ...base,
      route: undefined,
      statusCode: 404,
      contentType: 'application/problem+json',
      payload: JSON.stringify({
        type: '/problems/not-found',
        title: 'Not found',
        status: 404,
        code: 'NOT_FOUND',
      }),
    };
    expect(contractViolations(notFound)).toEqual([]);
    expect(contractViolations({ ...notFound, headers: {} })).toEqual([
      expect.stringMatching(/required header x-request-id is missing/),
    ]);
    expect(
      contractViolations({ ...notFound, headers: { ...requestId, 'retry-after': '1' } }),
    ).toEqual([expect.stringMatching(/header retry-after is not declared/)]);
    expect(contractViolations({ ...notFound, statusCode: 409 })).toEqual([
      expect.stringMatching(/not declared in x-unrouted-responses/),
    ]);
    // A 405 is declared with Allow, required.
    expect(contractViolations({ ...notFound, statusCode: 405 })).toEqual([
      expect.stringMatching(/required header allow is missing/),
    ]);
    expect(
      contractViolations({ ...notFound, statusCode: 405, headers: { ...requestId, allow: 'get' } }),
    ).toEqual([expect.stringMatching(/header allow: data must match pattern/)]);
  });

  it('lets the headers for browsers through on any response, unless declared otherwise', () => {
    const ok = {
      ...base,
      route: undefined,
      statusCode: 404,
      contentType: 'application/problem+json',
      payload: JSON.stringify({
        type: '/problems/not-found',
        title: 'Not found',
        status: 404,
        code: 'NOT_FOUND',
      }),
    };
    const browser = {
      'x-content-type-options': 'nosniff',
      'content-security-policy': "default-src 'none'",
      'access-control-allow-origin': 'https://app.example.com',
      vary: 'Origin',
    };
    expect(contractViolations({ ...ok, headers: { ...requestId, ...browser } })).toEqual([]);
    // The preflight's answer declares Vary (always `Origin`): there it is checked.
    const preflight = {
      ...ok,
      statusCode: 204,
      contentType: undefined,
      payload: '',
      headers: {
        ...requestId,
        'access-control-allow-origin': 'https://app.example.com',
        'access-control-allow-methods': 'GET, POST',
        'access-control-allow-headers': 'Authorization, Content-Type',
        'access-control-max-age': '600',
        vary: 'Origin',
      },
    };
    expect(contractViolations(preflight)).toEqual([]);
    expect(
      contractViolations({ ...preflight, headers: { ...preflight.headers, vary: '*' } }),
    ).toEqual([expect.stringMatching(/header vary: data must be equal to constant/)]);
  });

  it('catches a problem whose type is not the URL of its code', () => {
    const notFound = {
      ...api,
      route: '/api/users/:id',
      statusCode: 404,
      contentType: 'application/problem+json',
    };
    const problem = { title: 'Not found', status: 404, code: 'NOT_FOUND' };
    expect(
      contractViolations({
        ...notFound,
        payload: JSON.stringify({ ...problem, type: '/problems/not-found' }),
      }),
    ).toEqual([]);
    expect(
      contractViolations({
        ...notFound,
        payload: JSON.stringify({ ...problem, type: 'about:blank' }),
      }),
    ).toEqual([expect.stringMatching(/problem type about:blank, expected \/problems\/not-found/)]);
  });

  it('holds unrouted answers to the Problem schema', () => {
    expect(
      contractViolations({
        ...base,
        route: undefined,
        statusCode: 404,
        payload: '{"error":"Not Found"}',
      }),
    ).not.toEqual([]);
  });
});

describe('the test suite’s own secret check', () => {
  const sent = ['a password that was sent'];

  it('lets ordinary bodies and validation pointers through', () => {
    expect(secretsIn('{"accessToken":"eyJ.eyJ.sig","tokenType":"Bearer"}', sent)).toEqual([]);
    expect(
      secretsIn('{"pointer":"/password","message":"must NOT have fewer than 8"}', sent),
    ).toEqual([]);
  });

  it('catches hashes, password properties and passwords that were sent', () => {
    expect(secretsIn('{"passwordHash":"x"}', sent)).not.toEqual([]);
    expect(secretsIn('{"password_hash":"x"}', sent)).not.toEqual([]);
    expect(secretsIn('{"password" : "x"}', sent)).not.toEqual([]);
    expect(secretsIn('{"h":"$2b$04$abcdefghijklmnopqrstuv"}', sent)).not.toEqual([]);
    expect(secretsIn('{"detail":"a password that was sent"}', sent)).not.toEqual([]);
  });
});
