import { sql } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { createPasswordHasher, type PasswordHasher } from '../../src/lib/passwords.js';
import { createLoginFailuresRepository } from '../../src/modules/auth/login-failures-repository.js';
import { signUpAndLogin, useTestApp } from '../helpers/app.js';
import { authServiceWith } from '../helpers/auth-service.js';
import { expectProblem } from '../helpers/problems.js';
import { unique } from '../helpers/values.js';

/**
 * The per-account login limit: LOGIN_MAX_FAILURES (10 by default) failed logins per email
 * address in LOGIN_FAILURE_WINDOW (15 minutes), whatever the client's address. The app
 * trusts the address that app.inject comes from as a proxy, so that every attempt can
 * come from another client (X-Forwarded-For); the per-IP limits are raised out of the way
 * by useTestApp.
 */
const t = useTestApp({ TRUST_PROXY: '127.0.0.1' });

const MAX_FAILURES = 10;
const WINDOW_SECONDS = 15 * 60;
const WRONG = 'not the password';

let clientCounter = 0;
/** A client address no other request of this file has used. */
function newClient(): string {
  clientCounter += 1;
  return `198.18.${Math.floor(clientCounter / 250)}.${(clientCounter % 250) + 1}`;
}

function login(email: string, password: string, client = newClient()) {
  return t.inject({
    method: 'POST',
    url: '/api/auth/login',
    headers: { 'x-forwarded-for': client },
    payload: { email, password },
  });
}

/** `count` failed logins as `email`, each from another client; all must be 401s. */
async function fail(email: string, count: number): Promise<void> {
  for (let i = 0; i < count; i += 1) {
    const response = await login(email, WRONG);
    expect(response.statusCode, `failure ${i + 1}: ${response.body}`).toBe(401);
  }
}

/** The 429 of a locked address, with the seconds of Retry-After checked and returned. */
function expectLocked(response: LightMyRequestResponse): number {
  expectProblem(response, 429, 'RATE_LIMITED', '/api/auth/login');
  const retryAfter = Number(response.headers['retry-after']);
  expect(Number.isInteger(retryAfter), String(response.headers['retry-after'])).toBe(true);
  expect(retryAfter).toBeGreaterThan(0);
  expect(retryAfter).toBeLessThanOrEqual(WINDOW_SECONDS);
  return retryAfter;
}

async function failuresOf(email: string) {
  const rows = await t.db.sql(
    sql`select failures from login_failures where email_key = lower(${email})`,
  );
  return rows[0] === undefined ? null : Number(rows[0].failures);
}

/** Moves the address's window back, as if `seconds` had passed. */
async function age(email: string, seconds: number): Promise<void> {
  await t.db.sql(
    sql`update login_failures set window_started_at = window_started_at - make_interval(secs => ${seconds})
        where email_key = lower(${email})`,
  );
}

describe('the per-account login limit', () => {
  it('locks an account after 10 failures from 10 clients, for every client and even with the right password', async () => {
    const { user, password } = await signUpAndLogin(t);
    await fail(user.email, MAX_FAILURES);

    const locked = await login(user.email, password);
    const retryAfter = expectLocked(locked);
    expect(retryAfter).toBeGreaterThan(WINDOW_SECONDS - 60);
    expect(locked.json<{ detail: string }>().detail).toMatch(/Too many failed logins/);
    // The per-IP limit's headers are there too, as the spec's 429 declares.
    expect(locked.headers['x-ratelimit-limit']).toBeDefined();
    // Ten more clients, with the right password or not: still locked.
    for (let i = 0; i < MAX_FAILURES; i += 1) {
      expectLocked(await login(user.email, i % 2 === 0 ? password : WRONG));
    }
  });

  it('leaves other accounts alone, from the same clients', async () => {
    const victim = await signUpAndLogin(t);
    const other = await signUpAndLogin(t);
    const clients = Array.from({ length: MAX_FAILURES }, () => newClient());
    for (const client of clients) {
      expect((await login(victim.user.email, WRONG, client)).statusCode).toBe(401);
    }
    expectLocked(await login(victim.user.email, victim.password, clients[0]));
    for (const client of clients) {
      expect((await login(other.user.email, other.password, client)).statusCode).toBe(200);
    }
  });

  it('counts an email address in any letter case as one', async () => {
    const { user, password } = await signUpAndLogin(t);
    const upper = user.email.toUpperCase();
    await fail(upper, MAX_FAILURES / 2);
    await fail(user.email, MAX_FAILURES / 2);
    expectLocked(await login(user.email, password));
    expectLocked(await login(upper, password));
  });

  it('lets the right password in again once the window is over, and starts the count again', async () => {
    const { user, password } = await signUpAndLogin(t);
    await fail(user.email, MAX_FAILURES);
    expectLocked(await login(user.email, password));

    await age(user.email, WINDOW_SECONDS);
    expect((await login(user.email, password)).statusCode).toBe(200);
    expect(await failuresOf(user.email)).toBeNull();
    // A whole allowance again: ten failures, then locked.
    await fail(user.email, MAX_FAILURES);
    expectLocked(await login(user.email, password));
  });

  it('starts a new window for failures after the last one is over, without a success', async () => {
    const email = `${unique('aged')}@example.com`;
    await fail(email, MAX_FAILURES);
    expectLocked(await login(email, WRONG));
    await age(email, WINDOW_SECONDS);
    await fail(email, 1);
    expect(await failuresOf(email)).toBe(1);
  });

  it('starts the count again after a successful login', async () => {
    const { user, password } = await signUpAndLogin(t);
    await fail(user.email, MAX_FAILURES - 1);
    expect(await failuresOf(user.email)).toBe(MAX_FAILURES - 1);
    expect((await login(user.email, password)).statusCode).toBe(200);
    expect(await failuresOf(user.email)).toBeNull();
    await fail(user.email, MAX_FAILURES);
    expectLocked(await login(user.email, password));
  });

  it('locks an unknown address exactly like a known one, so a 429 reveals no account', async () => {
    const known = await signUpAndLogin(t);
    const unknownEmail = `${unique('nobody')}@example.com`;
    await fail(known.user.email, MAX_FAILURES);
    await fail(unknownEmail, MAX_FAILURES);

    const fromKnown = await login(known.user.email, known.password);
    const fromUnknown = await login(unknownEmail, known.password);
    expectLocked(fromKnown);
    expectLocked(fromUnknown);
    expect(fromUnknown.json()).toEqual(fromKnown.json());
    const names = (response: LightMyRequestResponse) => Object.keys(response.headers).sort();
    expect(names(fromUnknown)).toEqual(names(fromKnown));
  });

  it('counts every one of 30 concurrent failures, and checks no more than 10 passwords', async () => {
    const { user, password } = await signUpAndLogin(t);
    const responses = await Promise.all(Array.from({ length: 30 }, () => login(user.email, WRONG)));
    const statuses = responses.map((response) => response.statusCode).sort();
    expect(statuses.filter((status) => status === 401)).toHaveLength(MAX_FAILURES);
    expect(statuses.filter((status) => status === 429)).toHaveLength(30 - MAX_FAILURES);
    expect(await failuresOf(user.email)).toBe(30);
    expectLocked(await login(user.email, password));
  });

  it('counts wrong current passwords of changePassword as failed logins, and locks both', async () => {
    const { user, password, auth } = await signUpAndLogin(t);
    const change = (currentPassword: string) =>
      t.inject({
        method: 'POST',
        url: '/api/auth/password/change',
        headers: { ...auth, 'x-forwarded-for': newClient() },
        payload: { currentPassword, newPassword: 'a brand new passphrase' },
      });
    for (let i = 0; i < MAX_FAILURES; i += 1) {
      expectProblem(await change(WRONG), 400, 'VALIDATION_ERROR');
    }
    expect(await failuresOf(user.email)).toBe(MAX_FAILURES);
    // Even the right current password, and the login of the address, are refused now.
    const refused = await change(password);
    expect(expectProblem(refused, 429, 'RATE_LIMITED').instance).toBe('/api/auth/password/change');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expectLocked(await login(user.email, password));
    // Once the window is over, the right current password works and clears the count.
    await age(user.email, WINDOW_SECONDS + 1);
    expect((await change(password)).statusCode).toBe(200);
    expect(await failuresOf(user.email)).toBeNull();
  });

  it('refuses a locked address without running bcrypt', async () => {
    // The service on the app's own database and token service, with a real hasher that
    // counts its work.
    let hashed = 0;
    const real = createPasswordHasher({ cost: 4, threads: 1 });
    const passwords: PasswordHasher = {
      ...real,
      verify: async (password, hash) => {
        hashed += 1;
        return real.verify(password, hash);
      },
      verifyNothing: async (password) => {
        hashed += 1;
        return real.verifyNothing(password);
      },
    };
    const service = authServiceWith(t, passwords, {
      maxFailures: MAX_FAILURES,
      windowSeconds: WINDOW_SECONDS,
    });
    const client = { userAgent: 'login-limits test', ipAddress: '127.0.0.1' };
    try {
      const { user, password } = await signUpAndLogin(t);
      const unknownEmail = `${unique('nobody')}@example.com`;
      for (const email of [user.email, unknownEmail]) {
        for (let i = 0; i < MAX_FAILURES; i += 1) {
          const outcome = await service.login({ email, password: WRONG }, client);
          expect(outcome.ok || outcome.error.code).toBe('INVALID_CREDENTIALS');
        }
      }
      expect(hashed).toBe(2 * MAX_FAILURES);

      for (const email of [user.email, unknownEmail]) {
        const outcome = await service.login({ email, password }, client);
        expect(outcome.ok || outcome.error.code).toBe('TOO_MANY_ATTEMPTS');
      }
      expect(hashed, 'no hash for a locked address').toBe(2 * MAX_FAILURES);
    } finally {
      await real.close();
    }
  });

  it('clears the counters of windows that are over, and only those', async () => {
    const stale = `${unique('stale')}@example.com`;
    const fresh = `${unique('fresh')}@example.com`;
    await fail(stale, 1);
    await fail(fresh, 1);
    await age(stale, WINDOW_SECONDS + 1);
    const repository = createLoginFailuresRepository(t.db.database.db, {
      windowSeconds: WINDOW_SECONDS,
    });
    expect(await repository.deleteExpired()).toBeGreaterThanOrEqual(1);
    expect(await failuresOf(stale)).toBeNull();
    expect(await failuresOf(fresh)).toBe(1);
  });
});

describe('the per-account login limit, configured', () => {
  const small = useTestApp({ LOGIN_MAX_FAILURES: '2', LOGIN_FAILURE_WINDOW: '1h' });

  it('takes LOGIN_MAX_FAILURES and LOGIN_FAILURE_WINDOW', async () => {
    const email = `${unique('small')}@example.com`;
    const attempt = () =>
      small.inject({
        method: 'POST',
        url: '/api/auth/login',
        payload: { email, password: WRONG },
      });
    expect((await attempt()).statusCode).toBe(401);
    expect((await attempt()).statusCode).toBe(401);
    const locked = await attempt();
    expectProblem(locked, 429, 'RATE_LIMITED');
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(3500);
    expect(Number(locked.headers['retry-after'])).toBeLessThanOrEqual(3600);
  });
});
