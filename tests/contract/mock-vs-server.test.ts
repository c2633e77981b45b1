import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogin, useTestApp } from '../helpers/app.js';
import { startMock, type RunningMock } from '../helpers/mock.js';
import { unique } from '../helpers/values.js';

/**
 * The mock (`npm run mock`, a real process) and the server (app.inject) are sent the same
 * bad requests, ones the contract alone decides, and must refuse them alike: the same
 * status, content type, problem code, title and detail, and the same `errors` (location,
 * pointer, message), in the same order.
 */

const t = useTestApp();

let mock: RunningMock;

beforeAll(async () => {
  mock = await startMock();
}, 60_000);

afterAll(async () => {
  await mock?.stop();
});

interface BadRequest {
  name: string;
  method: 'GET' | 'POST' | 'PATCH';
  url: string;
  headers?: Record<string, string>;
  body?: string;
  /** What the server answers (checked too, so that agreeing on nothing cannot pass). */
  expected: { status: number; code: string; pointers: string[] };
}

type Problem = {
  code?: string;
  title?: string;
  detail?: string;
  instance?: string;
  errors?: { location: string; pointer: string; message: string }[];
};

interface Answer {
  status: number;
  contentType: string | undefined;
  problem: Problem;
}

const json = { 'content-type': 'application/json' };
const mergePatch = { 'content-type': 'application/merge-patch+json' };
const someUserId = '0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10';

function badRequests(token: string): BadRequest[] {
  return [
    {
      name: 'createUser: no password, an unknown field, a number for a string',
      method: 'POST',
      url: '/api/users',
      headers: json,
      body: JSON.stringify({
        email: `${unique('mv')}@example.com`,
        username: 12345,
        nickname: 'x',
      }),
      expected: {
        status: 400,
        code: 'VALIDATION_ERROR',
        pointers: ['body /password', 'body /nickname', 'body /username'],
      },
    },
    {
      name: 'getUser: an id that is not a uuid',
      method: 'GET',
      url: '/api/users/not-a-uuid',
      expected: { status: 400, code: 'VALIDATION_ERROR', pointers: ['path /id'] },
    },
    {
      name: 'listUsers: limit=0',
      method: 'GET',
      url: '/api/users?limit=0',
      expected: { status: 400, code: 'VALIDATION_ERROR', pointers: ['query /limit'] },
    },
    {
      name: 'listPosts: query parameters of the wrong type',
      method: 'GET',
      url: '/api/posts?authorId=12&limit=ten',
      expected: {
        status: 400,
        code: 'VALIDATION_ERROR',
        pointers: ['query /limit', 'query /authorId'],
      },
    },
    {
      name: 'updateUser without a token',
      method: 'PATCH',
      url: `/api/users/${someUserId}`,
      headers: mergePatch,
      body: JSON.stringify({ firstName: 'Ada' }),
      expected: { status: 401, code: 'UNAUTHORIZED', pointers: [] },
    },
    {
      name: 'updateUser with "Bearer x"',
      method: 'PATCH',
      url: `/api/users/${someUserId}`,
      headers: { ...mergePatch, authorization: 'Bearer x' },
      body: JSON.stringify({ firstName: 'Ada' }),
      expected: { status: 401, code: 'UNAUTHORIZED', pointers: [] },
    },
    {
      name: 'createPost: a title too long (with a valid token)',
      method: 'POST',
      url: '/api/posts',
      headers: { ...json, authorization: `Bearer ${token}` },
      body: JSON.stringify({ title: 'x'.repeat(1000), content: 'A body.' }),
      expected: { status: 400, code: 'VALIDATION_ERROR', pointers: ['body /title'] },
    },
    {
      name: 'createUser: a text/plain body',
      method: 'POST',
      url: '/api/users',
      headers: { 'content-type': 'text/plain' },
      body: 'email=a@example.com',
      expected: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', pointers: [] },
    },
    {
      name: 'login: malformed JSON',
      method: 'POST',
      url: '/api/auth/login',
      headers: json,
      body: '{"email": "a@example.com", "password": ',
      expected: { status: 400, code: 'MALFORMED_REQUEST', pointers: [] },
    },
    {
      name: 'a path the spec does not have',
      method: 'GET',
      url: '/api/nothing-here',
      expected: { status: 404, code: 'NOT_FOUND', pointers: [] },
    },
  ];
}

function parse(status: number, contentType: string | undefined, text: string): Answer {
  let problem: Problem;
  try {
    problem = JSON.parse(text) as Problem;
  } catch {
    problem = { detail: `(not JSON) ${text}` };
  }
  return { status, contentType, problem };
}

async function askServer(request: BadRequest): Promise<Answer> {
  const response = await t.inject({
    method: request.method,
    url: request.url,
    headers: request.headers ?? {},
    ...(request.body === undefined ? {} : { payload: request.body }),
  });
  const contentType = response.headers['content-type'];
  return parse(response.statusCode, contentType as string | undefined, response.body);
}

async function askMock(request: BadRequest): Promise<Answer> {
  const response = await fetch(`${mock.base}${request.url}`, {
    method: request.method,
    headers: request.headers ?? {},
    ...(request.body === undefined ? {} : { body: request.body }),
  });
  return parse(
    response.status,
    response.headers.get('content-type') ?? undefined,
    await response.text(),
  );
}

/** What must agree; the request id and the spec-less headers may differ. */
function comparable(answer: Answer) {
  const { code, title, detail, instance, errors } = answer.problem;
  return {
    status: answer.status,
    contentType: answer.contentType,
    code,
    title,
    detail,
    instance,
    errors,
  };
}

describe('the mock and the server refuse the same bad requests alike', () => {
  let token: string;

  beforeAll(async () => {
    // A real token of the server: the mock takes any well-formed one.
    ({ token } = await signUpAndLogin(t));
  });

  // The names are known before the token is; the token goes in when the test runs.
  for (const [index, { name }] of badRequests('').entries()) {
    it(name, async () => {
      const request = badRequests(token)[index]!;
      const [server, mocked] = await Promise.all([askServer(request), askMock(request)]);
      const pointers = (server.problem.errors ?? []).map((e) => `${e.location} ${e.pointer}`);
      expect({ status: server.status, code: server.problem.code, pointers }).toEqual(
        request.expected,
      );
      expect(server.contentType).toMatch(/^application\/problem\+json/);
      expect(comparable(mocked)).toEqual(comparable(server));
    });
  }
});

describe('the mock, past the contract', () => {
  const example = { alg: 'HS256', typ: 'JWT' };
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const tokenOf = (claims: Record<string, unknown>) =>
    `${encode(example)}.${encode(claims)}.c2lnbmF0dXJl`;
  const claims = { sub: someUserId, sid: '7c9e6679-7425-40de-944e-e07fc1f90ae7' };

  it('answers a valid request with the example of the spec', async () => {
    const response = await fetch(`${mock.base}/api/users/${someUserId}`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ id: someUserId, username: 'ada' });
    expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers Prefer: code=409 with the first 409 example, and Prefer: example=… with the one named', async () => {
    const signUp = JSON.stringify({
      email: 'ada@example.com',
      username: 'ada',
      password: 'correct horse battery staple',
    });
    const taken = await fetch(`${mock.base}/api/users`, {
      method: 'POST',
      headers: { ...json, prefer: 'code=409' },
      body: signUp,
    });
    expect(taken.status).toBe(409);
    expect(taken.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await taken.json()).toMatchObject({
      code: 'CONFLICT',
      errors: [{ location: 'body', pointer: '/email' }],
    });

    const lastAdmin = await fetch(`${mock.base}/api/users/${someUserId}`, {
      method: 'PATCH',
      headers: {
        ...mergePatch,
        authorization: `Bearer ${tokenOf(claims)}`,
        prefer: 'code=409, example=lastAdmin',
      },
      body: JSON.stringify({ role: 'user' }),
    });
    expect(lastAdmin.status).toBe(409);
    expect(await lastAdmin.json()).toMatchObject({
      code: 'CONFLICT',
      errors: [{ location: 'body', pointer: '/role' }],
    });
  });

  it('serves the spec and the problem types as the server does', async () => {
    for (const url of ['/openapi.json', '/problems/validation-error', '/problems/nothing']) {
      const [server, mocked] = await Promise.all([
        t.inject({ method: 'GET', url }),
        fetch(`${mock.base}${url}`),
      ]);
      expect(mocked.status, url).toBe(server.statusCode);
      expect(await mocked.json(), url).toEqual(server.json());
    }
    const [server, mocked] = await Promise.all([
      t.inject({ method: 'GET', url: '/openapi.yaml' }),
      fetch(`${mock.base}/openapi.yaml`),
    ]);
    expect(mocked.status).toBe(200);
    expect(await mocked.text()).toBe(server.body);
  });

  it('still refuses an invalid request when Prefer asks for a success', async () => {
    const response = await fetch(`${mock.base}/api/users/not-a-uuid`, {
      headers: { prefer: 'code=200' },
    });
    expect(response.status).toBe(400);
  });

  it('takes the token its own login hands out, and refuses an expired or unsigned-looking one', async () => {
    const login = await fetch(`${mock.base}/api/auth/login`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email: 'ada@example.com', password: 'correct horse battery staple' }),
    });
    expect(login.status).toBe(200);
    const { accessToken } = (await login.json()) as { accessToken: string };
    const me = await fetch(`${mock.base}/api/auth/me`, {
      headers: { authorization: `Bearer ${accessToken}` },
    });
    expect(me.status).toBe(200);

    const expired = await fetch(`${mock.base}/api/auth/me`, {
      headers: { authorization: `Bearer ${tokenOf({ ...claims, exp: 1 })}` },
    });
    expect(expired.status).toBe(401);
    expect(await expired.json()).toMatchObject({
      code: 'UNAUTHORIZED',
      detail: 'The access token has expired. Log in again.',
    });
    const noSession = await fetch(`${mock.base}/api/auth/me`, {
      headers: { authorization: `Bearer ${tokenOf({ sub: someUserId })}` },
    });
    expect(noSession.status).toBe(401);
  });

  it('answers a browser preflight and puts CORS headers on its own problems', async () => {
    const preflight = await fetch(`${mock.base}/api/users`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://localhost:5173',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
    expect(preflight.headers.get('access-control-allow-methods')).toBe('POST');

    const refused = await fetch(`${mock.base}/api/users/not-a-uuid`, {
      headers: { origin: 'http://localhost:5173' },
    });
    expect(refused.status).toBe(400);
    expect(refused.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
  });
});
