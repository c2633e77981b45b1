import { sql } from 'drizzle-orm';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { TEST_JWT_SECRET, signAccessToken, signUpAndLogin, useTestApp } from '../helpers/app.js';
import { observeResponses } from '../helpers/observe.js';

/**
 * What clients see when the server or its database fails: a declared 500 or 503 problem
 * that reveals nothing about the inside, for every operation that touches the database.
 */

const someone = '0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10';
const someSession = '7c9e6679-7425-40de-944b-e07fc1f90ae7';

const operations = [
  'createUser',
  'listUsers',
  'getUser',
  'updateUser',
  'deleteUser',
  'login',
  'getMe',
  'refreshToken',
  'logout',
  'logoutAll',
  'listSessions',
  'revokeSession',
  'changePassword',
  'adminListUsers',
  'adminGetUser',
  'createPost',
  'getPost',
  'getPostBySlug',
  'deletePost',
  'updatePost',
  'publishPost',
  'unpublishPost',
  'recordPostView',
  'listPosts',
  'listUserPosts',
] as const;

/** A well-formed request for each operation that touches the database. */
function requestFor(
  operation: (typeof operations)[number],
  id: string,
  token: string,
  refreshToken = 'a'.repeat(43),
): InjectOptions {
  const headers = { authorization: `Bearer ${token}` };
  const credentials = { email: 'f@example.com', password: 'long enough password' };
  switch (operation) {
    case 'createUser':
      return { method: 'POST', url: '/api/users', payload: { ...credentials, username: 'faulty' } };
    case 'listUsers':
      return { method: 'GET', url: '/api/users' };
    case 'getUser':
      return { method: 'GET', url: `/api/users/${id}` };
    case 'updateUser':
      return { method: 'PATCH', url: `/api/users/${id}`, headers, payload: { firstName: 'F' } };
    case 'deleteUser':
      return { method: 'DELETE', url: `/api/users/${id}`, headers };
    case 'login':
      return { method: 'POST', url: '/api/auth/login', payload: credentials };
    case 'getMe':
      return { method: 'GET', url: '/api/auth/me', headers };
    case 'refreshToken':
      return {
        method: 'POST',
        url: '/api/auth/refresh',
        payload: { refreshToken },
      };
    case 'logout':
      return { method: 'POST', url: '/api/auth/logout', headers };
    case 'logoutAll':
      return { method: 'POST', url: '/api/auth/logout-all', headers };
    case 'listSessions':
      return { method: 'GET', url: '/api/auth/sessions', headers };
    case 'revokeSession':
      return { method: 'DELETE', url: `/api/auth/sessions/${someSession}`, headers };
    case 'changePassword':
      return {
        method: 'POST',
        url: '/api/auth/password/change',
        headers,
        payload: { currentPassword: credentials.password, newPassword: 'another long password' },
      };
    case 'adminListUsers':
      return { method: 'GET', url: '/api/admin/users', headers };
    case 'adminGetUser':
      return { method: 'GET', url: `/api/admin/users/${id}`, headers };
    case 'createPost':
      return {
        method: 'POST',
        url: '/api/posts',
        headers,
        payload: { title: 'Faulty', content: 'A post.' },
      };
    case 'getPost':
      return { method: 'GET', url: `/api/posts/${id}` };
    case 'getPostBySlug':
      return { method: 'GET', url: '/api/posts/by-slug/faulty' };
    case 'deletePost':
      return { method: 'DELETE', url: `/api/posts/${id}`, headers };
    case 'updatePost':
      return { method: 'PATCH', url: `/api/posts/${id}`, headers, payload: { title: 'F' } };
    case 'publishPost':
      return { method: 'POST', url: `/api/posts/${id}/publish`, headers };
    case 'unpublishPost':
      return { method: 'POST', url: `/api/posts/${id}/unpublish`, headers };
    case 'recordPostView':
      return { method: 'POST', url: `/api/posts/${id}/views` };
    case 'listPosts':
      return { method: 'GET', url: '/api/posts' };
    case 'listUserPosts':
      return { method: 'GET', url: `/api/users/${id}/posts` };
  }
}

describe('a broken database (a query fails inside the server)', () => {
  const t = useTestApp();
  let id = '';
  let token = '';
  let refreshToken = '';

  beforeAll(async () => {
    ({
      user: { id },
      token,
      refreshToken,
    } = await signUpAndLogin(t));
    await t.db.sql(sql`alter table users rename to users_elsewhere`);
    await t.db.sql(sql`alter table posts rename to posts_elsewhere`);
  });
  afterAll(async () => {
    await t.db.sql(sql`alter table posts_elsewhere rename to posts`);
    await t.db.sql(sql`alter table users_elsewhere rename to users`);
  });

  it.each(operations)('%s answers a 500 that reveals nothing', async (operation) => {
    const request = requestFor(operation, id, token, refreshToken);
    const response = await t.inject(request);
    expect(response.statusCode).toBe(500);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    // Exactly these fields: no message, stack, SQL or table name of the real error.
    expect(response.json()).toEqual({
      type: '/problems/internal-error',
      title: 'Internal server error',
      status: 500,
      detail: 'Something went wrong on our side. Try again later.',
      instance: request.url,
      code: 'INTERNAL_ERROR',
    });
  });

  it('keeps /health and /ready answering (the database itself is up)', async () => {
    expect((await t.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect((await t.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200);
  });
});

describe('an unreachable database', () => {
  let app: FastifyInstance;
  let observed: { take(): string[] };

  beforeAll(async () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      JWT_SECRET: TEST_JWT_SECRET,
      // Nothing listens on port 1: every connection is refused at once.
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere',
      DB_CONNECT_TIMEOUT_MS: '500',
    });
    app = await buildApp(config);
    observed = observeResponses(app);
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
  });

  it.each(operations)('%s answers 503 SERVICE_UNAVAILABLE', async (operation) => {
    const response = await app.inject(
      requestFor(operation, someone, signAccessToken({ sub: someone, sid: someSession })),
    );
    expect(response.statusCode, response.body).toBe(503);
    expect(response.json()).toMatchObject({ code: 'SERVICE_UNAVAILABLE', status: 503 });
    expect(response.body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|postgres/i);
  });

  it('says it is not ready, while it is alive', async () => {
    const ready = await app.inject({ method: 'GET', url: '/ready' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
  });

  it('still refuses bad input and missing tokens before touching the database', async () => {
    const invalid = await app.inject({ method: 'POST', url: '/api/users', payload: {} });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json()).toMatchObject({ code: 'VALIDATION_ERROR' });
    expect((await app.inject({ method: 'GET', url: '/api/users/nope' })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/api/auth/me' })).statusCode).toBe(401);
  });

  it('still serves its contract', async () => {
    expect((await app.inject({ method: 'GET', url: '/openapi.json' })).statusCode).toBe(200);
  });

  afterEach(() => {
    expect(observed.take(), 'responses outside the contract').toEqual([]);
  });
});
