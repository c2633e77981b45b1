import { createSigner } from 'fast-jwt';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { buildApp, type AppDeps } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { observeResponses } from './observe.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export const TEST_JWT_SECRET = 'test-secret-that-is-at-least-32-characters-long';

/**
 * Signs an access token as the test apps' server would, for the claims given (`sub`,
 * `sid`, …): HS256 with the test secret, the default issuer and audience, a minute long.
 */
export const signAccessToken = createSigner({
  key: TEST_JWT_SECRET,
  algorithm: 'HS256',
  iss: 'contract-first-api',
  aud: 'contract-first-api',
  expiresIn: 60_000,
});

export interface TestApp {
  app: FastifyInstance;
  db: TestDatabase;
  inject(options: InjectOptions): Promise<LightMyRequestResponse>;
  /**
   * Hands over the contract violations and leaks found since the last call, for a test
   * that checks them request by request (afterEach then sees only those found later).
   */
  takeViolations?: () => string[];
}

export interface TestAppOptions {
  /**
   * Called with the text and parameters of every statement the app runs through Drizzle
   * (and of `t.db.sql`'s: the app then works on the test database's own connections, on
   * PostgreSQL too). For tests that count or EXPLAIN the statements of a request.
   */
  onQuery?: (query: string, params: unknown[]) => void;
  /** Parts the composition takes from outside (the webhook deliveries' queue, their timing). */
  deps?: Pick<AppDeps, 'webhookDeliveries' | 'webhookTiming'>;
}

/**
 * A fresh app on a fresh database for one test file (built in beforeAll, closed in
 * afterAll). Every response it sends is checked against the spec and for leaked secrets;
 * a test whose requests got such an answer fails in afterEach, naming it.
 */
export function useTestApp(
  env: Record<string, string> = {},
  options: TestAppOptions = {},
): TestApp {
  let observed: { take(): string[] } | undefined;
  const context = {} as TestApp;

  beforeAll(async () => {
    const { onQuery } = options;
    context.db = await createTestDatabase(onQuery ? { onQuery } : {});
    const config = loadConfig({
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      JWT_SECRET: TEST_JWT_SECRET,
      // Test files sign up and log in far more often than a person: every per-IP limit
      // is raised to this. rate-limit.test.ts unsets it ('') to see the limits themselves.
      RATE_LIMIT_AUTH_MAX: '100000',
      // A test machine's event loop is late for its own reasons (other tests, other
      // processes): load shedding is off unless a test turns it on (load-shedding.test.ts).
      MAX_EVENT_LOOP_DELAY_MS: '0',
      DATABASE_URL: context.db.url,
      ...env,
    });
    // On PostgreSQL the app opens its own pool, unless its statements are to be seen.
    const ownPool = onQuery === undefined;
    const app = await buildApp(config, {
      ...(ownPool ? {} : { database: context.db.database }),
      ...options.deps,
    });
    observed = observeResponses(app);
    await app.ready();
    context.app = app;
    context.inject = (options) => app.inject(options);
    context.takeViolations = () => observed?.take() ?? [];
  }, 60_000);

  afterEach(() => {
    expect(observed?.take() ?? [], 'responses outside the contract, or leaking secrets').toEqual(
      [],
    );
  });

  afterAll(async () => {
    await context.app?.close();
    await context.db?.drop();
  });

  return context;
}

export interface SignUp {
  email?: string;
  username?: string;
  password?: string;
  firstName?: string;
  lastName?: string;
}

let counter = 0;

/** The `sid` claim of an access token: the session it belongs to. */
export function sessionIdOf(accessToken: string): string {
  const payload = accessToken.split('.')[1] ?? '';
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as {
    sid?: unknown;
  };
  if (typeof claims.sid !== 'string') throw new Error('the access token names no session');
  return claims.sid;
}

/** Signs up a new user through the API and logs them in. */
export async function signUpAndLogin(t: TestApp, overrides: SignUp = {}) {
  counter += 1;
  const suffix = `${process.pid}${counter}${Math.random().toString(36).slice(2, 6)}`;
  const body = {
    email: `user${suffix}@example.com`,
    username: `user${suffix}`,
    password: 'correct horse battery staple',
    ...overrides,
  };
  const created = await t.inject({ method: 'POST', url: '/api/users', payload: body });
  expect(created.statusCode, created.body).toBe(201);
  const login = await t.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email: body.email, password: body.password },
  });
  expect(login.statusCode, login.body).toBe(200);
  const { accessToken, refreshToken } = login.json<{
    accessToken: string;
    refreshToken: string;
  }>();
  const user = created.json<{ id: string; email: string; username: string }>();
  return {
    user,
    password: body.password,
    token: accessToken,
    refreshToken,
    /** The session of the login (the access token's `sid`). */
    sessionId: sessionIdOf(accessToken),
    auth: { authorization: `Bearer ${accessToken}` },
  };
}

/** `t.inject` as a call: a method, a URL, the caller's headers and a JSON body, if any. */
export function caller(t: Pick<TestApp, 'inject'>) {
  return (
    method: InjectOptions['method'],
    url: string,
    headers: Record<string, string>,
    body?: unknown,
  ) =>
    t.inject({ method, url, headers, ...(body === undefined ? {} : { payload: body as object }) });
}
