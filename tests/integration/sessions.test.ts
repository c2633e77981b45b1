import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { InjectOptions } from 'fastify';
import { describe, expect, it } from 'vitest';
import type { components } from '../../generated/api.js';
import { sessionIdOf, signAccessToken, signUpAndLogin, useTestApp } from '../helpers/app.js';
import { expectProblem, expectValidationError } from '../helpers/problems.js';
import { securedCalls } from '../helpers/secured.js';
import { MAX_LIVE_SESSIONS } from '../../src/modules/auth/sessions-repository.js';
import { loadSpec } from '../../src/spec.js';

type TokenPair = components['schemas']['TokenPair'];
type LoginResponse = components['schemas']['LoginResponse'];
type SessionList = components['schemas']['SessionList'];
type User = components['schemas']['User'];

const t = useTestApp();

const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'staple battery horse correct';
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';
const base64url43 = /^[A-Za-z0-9_-]{43}$/;

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const sha256 = (token: string) => createHash('sha256').update(token).digest('hex');

function login(email: string, password = PASSWORD, extra: Partial<InjectOptions> = {}) {
  return t.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email, password },
    ...extra,
  });
}

function refresh(refreshToken: unknown) {
  return t.inject({
    method: 'POST',
    url: '/api/auth/refresh',
    payload: { refreshToken },
  });
}

function me(accessToken: string) {
  return t.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(accessToken) });
}

/** A second session of an account: another login. */
async function anotherSession(email: string, password = PASSWORD) {
  const response = await login(email, password);
  expect(response.statusCode, response.body).toBe(200);
  const pair = response.json<LoginResponse>();
  return { ...pair, sessionId: sessionIdOf(pair.accessToken) };
}

async function refreshed(refreshToken: string): Promise<TokenPair> {
  const response = await refresh(refreshToken);
  expect(response.statusCode, response.body).toBe(200);
  return response.json<TokenPair>();
}

/** Moves a token's exchange back in time, past the grace period for retries. */
async function ageRotation(refreshToken: string) {
  await t.db.sql(
    sql`update refresh_tokens set used_at = used_at - interval '1 hour' where token_hash = ${sha256(refreshToken)}`,
  );
}

async function sessionRow(sessionId: string) {
  const [row] = await t.db.sql(sql`select * from sessions where id = ${sessionId}`);
  return row;
}

/** The session's live refresh tokens: neither exchanged nor revoked. */
async function liveTokenHashes(sessionId: string): Promise<string[]> {
  const rows = await t.db.sql(
    sql`select token_hash from refresh_tokens
        where session_id = ${sessionId} and used_at is null and revoked_at is null`,
  );
  return rows.map((row) => String(row.token_hash));
}

/** Every secured operation refuses this access token with a 401 whose detail matches. */
async function expectRefusedEverywhere(
  owner: { userId: string; sessionId: string },
  accessToken: string,
  detail: RegExp,
) {
  const calls = securedCalls(owner, bearer(accessToken));
  // Read from the spec: these at least, and whatever secured operation comes next.
  expect(calls.map((call) => call.operationId)).toEqual(
    expect.arrayContaining([
      'getMe',
      'updateUser',
      'deleteUser',
      'logout',
      'logoutAll',
      'listSessions',
      'revokeSession',
      'changePassword',
    ]),
  );
  for (const { operationId, request } of calls) {
    const problem = expectProblem(await t.inject(request), 401, 'UNAUTHORIZED');
    expect(problem.detail, operationId).toMatch(detail);
  }
}

describe('login starts a session', () => {
  it('answers a token pair and the account; the pair works', async () => {
    const { user } = await signUpAndLogin(t);
    const response = await login(user.email);
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json<LoginResponse>();
    expect(body).toMatchObject({ tokenType: 'Bearer', expiresIn: 900, user: { id: user.id } });
    expect(body.refreshToken).toMatch(base64url43);

    const sessionId = sessionIdOf(body.accessToken);
    const row = await sessionRow(sessionId);
    expect(row).toMatchObject({ user_id: user.id, revoked_at: null });
    expect(new Date(String(body.refreshTokenExpiresAt)).getTime()).toBe(
      new Date(row?.expires_at as string).getTime(),
    );
    // 30 days (REFRESH_TOKEN_TTL) after the login, by the database's clock.
    const lifetime =
      new Date(row?.expires_at as string).getTime() - new Date(row?.created_at as string).getTime();
    expect(lifetime).toBe(30 * 86400 * 1000);

    expect((await me(body.accessToken)).json<User>().id).toBe(user.id);
    expect((await refresh(body.refreshToken)).statusCode).toBe(200);
  });

  it('stores only the SHA-256 of the refresh token', async () => {
    const { refreshToken, sessionId } = await signUpAndLogin(t);
    const rows = await t.db.sql(
      sql`select token_hash from refresh_tokens where session_id = ${sessionId}`,
    );
    expect(rows).toEqual([{ token_hash: sha256(refreshToken) }]);
    const anywhere = await t.db.sql(
      sql`select count(*)::int as n from refresh_tokens where token_hash = ${refreshToken}`,
    );
    expect(anywhere).toEqual([{ n: 0 }]);
  });

  it('gives every login its own session and refresh token', async () => {
    const { user, refreshToken, sessionId } = await signUpAndLogin(t);
    const second = await anotherSession(user.email);
    expect(second.sessionId).not.toBe(sessionId);
    expect(second.refreshToken).not.toBe(refreshToken);
  });

  it('records the User-Agent (its first 512 characters) and the client address', async () => {
    const { user } = await signUpAndLogin(t);
    const userAgent = `Agent/1.0 ${'x'.repeat(600)}`;
    const response = await login(user.email, PASSWORD, {
      headers: { 'user-agent': userAgent },
      remoteAddress: '203.0.113.9',
    });
    const row = await sessionRow(sessionIdOf(response.json<LoginResponse>().accessToken));
    expect(row).toMatchObject({ user_agent: userAgent.slice(0, 512), ip_address: '203.0.113.9' });

    const bare = await login(user.email, PASSWORD, { headers: { 'user-agent': '' } });
    const bareRow = await sessionRow(sessionIdOf(bare.json<LoginResponse>().accessToken));
    expect(bareRow?.user_agent).toBeNull();
  });
});

describe('responses that carry tokens', () => {
  it('are kept by no cache: login, refresh and password change send Cache-Control: no-store', async () => {
    const { user, refreshToken, auth } = await signUpAndLogin(t);
    const loggedIn = await login(user.email);
    const refreshedPair = await refresh(refreshToken);
    const changed = await t.inject({
      method: 'POST',
      url: '/api/auth/password/change',
      headers: auth,
      payload: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD },
    });
    for (const response of [loggedIn, refreshedPair, changed]) {
      expect(response.statusCode, response.body).toBe(200);
      expect(response.headers['cache-control']).toBe('no-store');
    }
  });
});

describe('refreshToken: POST /api/auth/refresh', () => {
  it('answers a new pair of the same session; the new tokens work', async () => {
    const { user, refreshToken, sessionId } = await signUpAndLogin(t);
    const response = await refresh(refreshToken);
    expect(response.statusCode, response.body).toBe(200);
    const pair = response.json<TokenPair>();
    expect(Object.keys(pair).sort()).toEqual([
      'accessToken',
      'expiresIn',
      'refreshToken',
      'refreshTokenExpiresAt',
      'tokenType',
    ]);
    expect(pair).toMatchObject({ tokenType: 'Bearer', expiresIn: 900 });
    expect(pair.refreshToken).toMatch(base64url43);
    expect(pair.refreshToken).not.toBe(refreshToken);
    expect(sessionIdOf(pair.accessToken)).toBe(sessionId);
    // The session's end does not move: it is absolute.
    const row = await sessionRow(sessionId);
    expect(new Date(pair.refreshTokenExpiresAt).getTime()).toBe(
      new Date(row?.expires_at as string).getTime(),
    );
    expect((await me(pair.accessToken)).json<User>().id).toBe(user.id);
    expect((await refresh(pair.refreshToken)).statusCode).toBe(200);
  });

  it('kills the refresh token it exchanged: only its successor is live', async () => {
    const { refreshToken, sessionId } = await signUpAndLogin(t);
    const pair = await refreshed(refreshToken);
    expect(await liveTokenHashes(sessionId)).toEqual([sha256(pair.refreshToken)]);
  });

  it('counts as use of the session: last_used_at moves to now', async () => {
    const { refreshToken, sessionId } = await signUpAndLogin(t);
    await t.db.sql(
      sql`update sessions set last_used_at = now() - interval '6 days' where id = ${sessionId}`,
    );
    await refreshed(refreshToken);
    const [row] = await t.db.sql(
      sql`select last_used_at > now() - interval '1 minute' as recent from sessions where id = ${sessionId}`,
    );
    expect(row).toEqual({ recent: true });
  });

  it('puts the current role in the new access token', async () => {
    const { user, refreshToken } = await signUpAndLogin(t);
    await t.db.sql(sql`update users set role = 'admin' where id = ${user.id}`);
    const pair = await refreshed(refreshToken);
    const claims = JSON.parse(
      Buffer.from(pair.accessToken.split('.')[1] ?? '', 'base64url').toString('utf8'),
    ) as Record<string, unknown>;
    expect(claims.role).toBe('admin');
  });

  describe('a refresh token presented again after its grace period', () => {
    it('is refused, and ends its whole session: successor and access tokens die', async () => {
      const { user, refreshToken, sessionId, token } = await signUpAndLogin(t);
      const pair = await refreshed(refreshToken);
      await ageRotation(refreshToken);

      const reused = expectProblem(await refresh(refreshToken), 401, 'UNAUTHORIZED');
      expect(reused.detail).toMatch(/already used/);
      expect((await sessionRow(sessionId))?.revoked_at).not.toBeNull();

      expectProblem(await refresh(pair.refreshToken), 401, 'UNAUTHORIZED');
      for (const accessToken of [token, pair.accessToken]) {
        await expectRefusedEverywhere({ userId: user.id, sessionId }, accessToken, /has ended/);
      }
    });

    it('leaves the other sessions of the account alone', async () => {
      const { user, refreshToken } = await signUpAndLogin(t);
      const other = await anotherSession(user.email);
      await refreshed(refreshToken);
      await ageRotation(refreshToken);
      expectProblem(await refresh(refreshToken), 401, 'UNAUTHORIZED');
      expect((await me(other.accessToken)).statusCode).toBe(200);
      expect((await refresh(other.refreshToken)).statusCode).toBe(200);
    });
  });

  describe('a retry within the grace period', () => {
    it('gets a new pair again, and leaves exactly one live refresh token: the last one', async () => {
      const { user, refreshToken, sessionId } = await signUpAndLogin(t);
      const first = await refreshed(refreshToken);
      const retry = await refreshed(refreshToken);
      expect(retry.refreshToken).not.toBe(first.refreshToken);
      expect(await liveTokenHashes(sessionId)).toEqual([sha256(retry.refreshToken)]);
      // The replaced successor is revoked, not exchanged; the retried token points at the new one.
      const [replaced] = await t.db.sql(
        sql`select used_at, revoked_at from refresh_tokens where token_hash = ${sha256(first.refreshToken)}`,
      );
      expect(replaced?.used_at).toBeNull();
      expect(replaced?.revoked_at).not.toBeNull();
      const [parent] = await t.db.sql(
        sql`select p.replaced_by = s.id as points_at_retry from refresh_tokens p, refresh_tokens s
            where p.token_hash = ${sha256(refreshToken)} and s.token_hash = ${sha256(retry.refreshToken)}`,
      );
      expect(parent).toEqual({ points_at_retry: true });

      expect((await me(retry.accessToken)).json<User>().id).toBe(user.id);
      expect((await refresh(retry.refreshToken)).statusCode).toBe(200);
    });

    it('is a replay once the successor has been exchanged: the session ends', async () => {
      const { user, refreshToken, sessionId } = await signUpAndLogin(t);
      const first = await refreshed(refreshToken);
      const second = await refreshed(first.refreshToken);
      expectProblem(await refresh(refreshToken), 401, 'UNAUTHORIZED');
      expectProblem(await refresh(second.refreshToken), 401, 'UNAUTHORIZED');
      await expectRefusedEverywhere(
        { userId: user.id, sessionId },
        second.accessToken,
        /has ended/,
      );
    });
  });

  it('gives 20 concurrent exchanges of one token exactly one live successor, in a live session', async () => {
    const { refreshToken, sessionId } = await signUpAndLogin(t);
    const responses = await Promise.all(Array.from({ length: 20 }, () => refresh(refreshToken)));
    // The first exchanges it, the others are retries within the grace period.
    expect(responses.map((response) => response.statusCode)).toEqual(Array(20).fill(200));
    const given = responses.map((response) => response.json<TokenPair>().refreshToken);
    expect(new Set(given).size).toBe(20);

    const live = await liveTokenHashes(sessionId);
    expect(live).toHaveLength(1);
    const liveOnes = given.filter((token) => live.includes(sha256(token)));
    expect(liveOnes).toHaveLength(1);
    for (const token of given.filter((each) => each !== liveOnes[0])) {
      const [row] = await t.db.sql(
        sql`select used_at is not null or revoked_at is not null as dead from refresh_tokens
            where token_hash = ${sha256(token)}`,
      );
      expect(row).toEqual({ dead: true });
    }
    expect((await sessionRow(sessionId))?.revoked_at).toBeNull();
    expect((await refresh(liveOnes[0])).statusCode).toBe(200);
  });

  it('answers 401 to a refresh token it never gave out', async () => {
    const problem = expectProblem(await refresh('A'.repeat(43)), 401, 'UNAUTHORIZED');
    expect(problem).toMatchObject({
      instance: '/api/auth/refresh',
      detail: expect.stringMatching(/not valid/),
    });
  });

  it('answers 401 to an access token sent as a refresh token', async () => {
    const { token } = await signUpAndLogin(t);
    expectProblem(await refresh(token.slice(0, 256)), 401, 'UNAUTHORIZED');
  });

  it('answers 401 once the session is past its absolute end, on refresh and on every secured operation', async () => {
    const { user, refreshToken, sessionId, token } = await signUpAndLogin(t);
    await t.db.sql(
      sql`update sessions set expires_at = now() - interval '1 second' where id = ${sessionId}`,
    );
    const problem = expectProblem(await refresh(refreshToken), 401, 'UNAUTHORIZED');
    expect(problem.detail).toMatch(/expired/);
    await expectRefusedEverywhere({ userId: user.id, sessionId }, token, /expired/);
  });

  it('answers 401 once the session has been idle too long, on refresh and on every secured operation', async () => {
    const { user, refreshToken, sessionId, token } = await signUpAndLogin(t);
    await t.db.sql(
      sql`update sessions set last_used_at = now() - interval '7 days 1 minute' where id = ${sessionId}`,
    );
    const problem = expectProblem(await refresh(refreshToken), 401, 'UNAUTHORIZED');
    expect(problem.detail).toMatch(/period without use/);
    await expectRefusedEverywhere({ userId: user.id, sessionId }, token, /period without use/);
  });

  it('answers 401 to the refresh token of a disabled account, and works again once enabled', async () => {
    const { user, refreshToken } = await signUpAndLogin(t);
    await t.db.sql(sql`update users set is_active = false where id = ${user.id}`);
    const problem = expectProblem(await refresh(refreshToken), 401, 'UNAUTHORIZED');
    expect(problem.detail).toMatch(/disabled/);
    await t.db.sql(sql`update users set is_active = true where id = ${user.id}`);
    expect((await refresh(refreshToken)).statusCode).toBe(200);
  });

  it('answers 401 to the refresh token of a deleted account', async () => {
    const { user, refreshToken, auth } = await signUpAndLogin(t);
    const deleted = await t.inject({
      method: 'DELETE',
      url: `/api/users/${user.id}`,
      headers: auth,
    });
    expect(deleted.statusCode).toBe(200);
    expectProblem(await refresh(refreshToken), 401, 'UNAUTHORIZED');
  });

  it.each([
    ['no refresh token', {}, '/refreshToken'],
    ['an empty refresh token', { refreshToken: '' }, '/refreshToken'],
    ['a numeric refresh token', { refreshToken: 12345 }, '/refreshToken'],
    ['a refresh token of 257 characters', { refreshToken: 'a'.repeat(257) }, '/refreshToken'],
    ['an unknown property', { refreshToken: 'a'.repeat(43), accessToken: 'x' }, '/accessToken'],
  ])('answers 400 to %s', async (_name, payload, pointer) => {
    const response = await t.inject({ method: 'POST', url: '/api/auth/refresh', payload });
    expectValidationError(response, 'body', pointer);
  });
});

describe('logout: POST /api/auth/logout', () => {
  it("ends the caller's session: its access and refresh tokens die at once, everywhere", async () => {
    const { user, refreshToken, sessionId, token, auth } = await signUpAndLogin(t);
    const pair = await refreshed(refreshToken);
    const response = await t.inject({ method: 'POST', url: '/api/auth/logout', headers: auth });
    expect(response.statusCode, response.body).toBe(204);
    expect(response.body).toBe('');
    expectProblem(await refresh(pair.refreshToken), 401, 'UNAUTHORIZED');
    for (const accessToken of [token, pair.accessToken]) {
      await expectRefusedEverywhere({ userId: user.id, sessionId }, accessToken, /has ended/);
    }
  });

  it('leaves the other sessions of the account working', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const other = await anotherSession(user.email);
    expect(
      (await t.inject({ method: 'POST', url: '/api/auth/logout', headers: auth })).statusCode,
    ).toBe(204);
    expect((await me(other.accessToken)).statusCode).toBe(200);
    expect((await refresh(other.refreshToken)).statusCode).toBe(200);
  });

  it('answers 401 without a token', async () => {
    expectProblem(await t.inject({ method: 'POST', url: '/api/auth/logout' }), 401, 'UNAUTHORIZED');
  });
});

describe('logoutAll: POST /api/auth/logout-all', () => {
  it("ends every session of the caller's account, and no other account's", async () => {
    const a = await signUpAndLogin(t);
    const second = await anotherSession(a.user.email);
    const b = await signUpAndLogin(t);
    const response = await t.inject({
      method: 'POST',
      url: '/api/auth/logout-all',
      headers: bearer(second.accessToken),
    });
    expect(response.statusCode, response.body).toBe(204);
    for (const session of [
      { sessionId: a.sessionId, accessToken: a.token, refreshToken: a.refreshToken },
      second,
    ]) {
      expectProblem(await refresh(session.refreshToken), 401, 'UNAUTHORIZED');
      await expectRefusedEverywhere(
        { userId: a.user.id, sessionId: session.sessionId },
        session.accessToken,
        /has ended/,
      );
    }
    expect((await me(b.token)).statusCode).toBe(200);
    expect((await refresh(b.refreshToken)).statusCode).toBe(200);
    // A new login works as ever.
    expect((await login(a.user.email)).statusCode).toBe(200);
  });
});

describe('listSessions: GET /api/auth/sessions', () => {
  it("lists the caller's live sessions, newest first, and marks the current one", async () => {
    const { user } = await signUpAndLogin(t);
    const older = await login(user.email, PASSWORD, {
      headers: { 'user-agent': 'Phone/2.0' },
      remoteAddress: '198.51.100.23',
    });
    const newer = await login(user.email, PASSWORD, {
      headers: { 'user-agent': 'Desktop/1.0' },
      remoteAddress: '203.0.113.7',
    });
    const olderId = sessionIdOf(older.json<LoginResponse>().accessToken);
    const newerId = sessionIdOf(newer.json<LoginResponse>().accessToken);
    // Someone else's sessions are never listed.
    await signUpAndLogin(t);

    const response = await t.inject({
      method: 'GET',
      url: '/api/auth/sessions',
      headers: bearer(older.json<LoginResponse>().accessToken),
    });
    expect(response.statusCode, response.body).toBe(200);
    const { items } = response.json<SessionList>();
    const mine = items.filter((item) => [olderId, newerId].includes(item.id));
    expect(items).toHaveLength(3); // signUpAndLogin's own login too
    expect(items[0]?.id).toBe(newerId);
    expect(items[1]?.id).toBe(olderId);
    expect(mine[0]).toEqual({
      id: newerId,
      createdAt: expect.any(String),
      lastUsedAt: expect.any(String),
      expiresAt: expect.any(String),
      userAgent: 'Desktop/1.0',
      ipAddress: '203.0.113.7',
      current: false,
    });
    expect(mine[1]).toMatchObject({
      userAgent: 'Phone/2.0',
      ipAddress: '198.51.100.23',
      current: true,
    });
    expect(items.filter((item) => item.current)).toHaveLength(1);
  });

  it('leaves out sessions that were revoked, expired or idle too long', async () => {
    const { user, auth, sessionId } = await signUpAndLogin(t);
    const revoked = await anotherSession(user.email);
    const expired = await anotherSession(user.email);
    const idle = await anotherSession(user.email);
    await t.inject({
      method: 'POST',
      url: '/api/auth/logout',
      headers: bearer(revoked.accessToken),
    });
    await t.db.sql(
      sql`update sessions set expires_at = now() - interval '1 second' where id = ${expired.sessionId}`,
    );
    await t.db.sql(
      sql`update sessions set last_used_at = now() - interval '8 days' where id = ${idle.sessionId}`,
    );
    const response = await t.inject({ method: 'GET', url: '/api/auth/sessions', headers: auth });
    expect(response.json<SessionList>().items.map((item) => item.id)).toEqual([sessionId]);
  });

  it('answers 401 without a token', async () => {
    expectProblem(
      await t.inject({ method: 'GET', url: '/api/auth/sessions' }),
      401,
      'UNAUTHORIZED',
    );
  });
});

describe('the live sessions of an account', () => {
  it('are as many at most as the spec lets listSessions answer', () => {
    const spec = loadSpec() as unknown as {
      components: { schemas: { SessionList: { properties: { items: { maxItems: number } } } } };
    };
    expect(spec.components.schemas.SessionList.properties.items.maxItems).toBe(MAX_LIVE_SESSIONS);
  });

  it(`are ${MAX_LIVE_SESSIONS} at most: a login past them ends the least recently used one`, async () => {
    const { user, refreshToken } = await signUpAndLogin(t);
    const second = await anotherSession(user.email);
    // The first session is used again: the second is now the least recently used.
    const first = await refreshed(refreshToken);
    // The other logins, ten at a time: concurrent logins race for the last places.
    for (let done = 2; done < MAX_LIVE_SESSIONS + 1; done += 10) {
      const batch = Math.min(10, MAX_LIVE_SESSIONS + 1 - done);
      await Promise.all(Array.from({ length: batch }, () => anotherSession(user.email)));
    }
    const response = await t.inject({
      method: 'GET',
      url: '/api/auth/sessions',
      headers: bearer(first.accessToken),
    });
    expect(response.statusCode, response.body).toBe(200);
    const ids = response.json<SessionList>().items.map((item) => item.id);
    expect(ids).toHaveLength(MAX_LIVE_SESSIONS);
    expect(ids).toContain(sessionIdOf(first.accessToken));
    expect(ids).not.toContain(second.sessionId);
    // The ended session's tokens are dead; the others work.
    expectProblem(await refresh(second.refreshToken), 401, 'UNAUTHORIZED');
    expectProblem(await me(second.accessToken), 401, 'UNAUTHORIZED');
    expect((await me(first.accessToken)).statusCode).toBe(200);
  }, 60_000);
});

describe('revokeSession: DELETE /api/auth/sessions/{id}', () => {
  const revoke = (id: string, accessToken: string) =>
    t.inject({ method: 'DELETE', url: `/api/auth/sessions/${id}`, headers: bearer(accessToken) });

  it('ends another session of the caller at once; the caller stays', async () => {
    const { user, token, refreshToken } = await signUpAndLogin(t);
    const other = await anotherSession(user.email);
    const response = await revoke(other.sessionId, token);
    expect(response.statusCode, response.body).toBe(204);
    expect(response.body).toBe('');
    expectProblem(await refresh(other.refreshToken), 401, 'UNAUTHORIZED');
    await expectRefusedEverywhere(
      { userId: user.id, sessionId: other.sessionId },
      other.accessToken,
      /has ended/,
    );
    expect((await me(token)).statusCode).toBe(200);
    expect((await refresh(refreshToken)).statusCode).toBe(200);
    // Ended once: it is no longer one of the caller's live sessions.
    expectProblem(await revoke(other.sessionId, token), 404, 'NOT_FOUND');
  });

  it("can end the caller's own session, like logout", async () => {
    const { user, token, sessionId } = await signUpAndLogin(t);
    expect((await revoke(sessionId, token)).statusCode).toBe(204);
    await expectRefusedEverywhere({ userId: user.id, sessionId }, token, /has ended/);
  });

  it("answers another user's session exactly like a missing one, and leaves it alone", async () => {
    const a = await signUpAndLogin(t);
    const b = await signUpAndLogin(t);
    const foreign = await revoke(b.sessionId, a.token);
    const missing = await revoke(UNKNOWN_ID, a.token);
    const problem = expectProblem(foreign, 404, 'NOT_FOUND');
    expectProblem(missing, 404, 'NOT_FOUND');
    expect({ ...problem, instance: undefined }).toEqual({
      ...missing.json<object>(),
      instance: undefined,
    });
    expect(problem.detail).toBe('Session not found.');
    expect((await me(b.token)).statusCode).toBe(200);
    expect((await refresh(b.refreshToken)).statusCode).toBe(200);
  });

  it('answers 404 to an expired session of the caller', async () => {
    const { user, token } = await signUpAndLogin(t);
    const other = await anotherSession(user.email);
    await t.db.sql(
      sql`update sessions set expires_at = now() - interval '1 second' where id = ${other.sessionId}`,
    );
    expectProblem(await revoke(other.sessionId, token), 404, 'NOT_FOUND');
  });

  it('answers 400 to an id that is not a UUID', async () => {
    const { token } = await signUpAndLogin(t);
    expectValidationError(await revoke('not-a-uuid', token), 'path', '/id');
  });
});

describe('changePassword: POST /api/auth/password/change', () => {
  const change = (accessToken: string, payload: Record<string, unknown>) =>
    t.inject({
      method: 'POST',
      url: '/api/auth/password/change',
      headers: bearer(accessToken),
      payload,
    });

  it('changes the password, renews this session and ends every other one', async () => {
    const { user, token, refreshToken, sessionId } = await signUpAndLogin(t);
    const other = await anotherSession(user.email);
    const response = await change(token, { currentPassword: PASSWORD, newPassword: NEW_PASSWORD });
    expect(response.statusCode, response.body).toBe(200);
    const pair = response.json<TokenPair>();
    expect(sessionIdOf(pair.accessToken)).toBe(sessionId);
    expect(pair.refreshToken).toMatch(base64url43);

    // This session goes on: its new pair works, and so does its current access token.
    expect((await me(pair.accessToken)).statusCode).toBe(200);
    expect((await me(token)).statusCode).toBe(200);
    expect(await liveTokenHashes(sessionId)).toEqual([sha256(pair.refreshToken)]);
    const next = await refreshed(pair.refreshToken);
    expect((await me(next.accessToken)).statusCode).toBe(200);

    // Every other session ended at once.
    expectProblem(await refresh(other.refreshToken), 401, 'UNAUTHORIZED');
    await expectRefusedEverywhere(
      { userId: user.id, sessionId: other.sessionId },
      other.accessToken,
      /has ended/,
    );

    // Only the new password logs in.
    expectProblem(await login(user.email, PASSWORD), 401, 'INVALID_CREDENTIALS');
    expect((await login(user.email, NEW_PASSWORD)).statusCode).toBe(200);

    // The refresh token from before the change is dead (and presenting it ends the session).
    expectProblem(await refresh(refreshToken), 401, 'UNAUTHORIZED');
  });

  it('answers 400 pointing at /currentPassword to a wrong current password; nothing changes', async () => {
    const { user, token, refreshToken } = await signUpAndLogin(t);
    const other = await anotherSession(user.email);
    const response = await change(token, {
      currentPassword: 'wrong horse battery staple',
      newPassword: NEW_PASSWORD,
    });
    const problem = expectValidationError(response, 'body', '/currentPassword');
    expect(problem.errors).toHaveLength(1);
    expect(problem.detail).toBe('The current password is wrong.');
    expect((await login(user.email, PASSWORD)).statusCode).toBe(200);
    expectProblem(await login(user.email, NEW_PASSWORD), 401, 'INVALID_CREDENTIALS');
    expect((await me(other.accessToken)).statusCode).toBe(200);
    expect((await refresh(other.refreshToken)).statusCode).toBe(200);
    expect((await refresh(refreshToken)).statusCode).toBe(200);
  });

  it('answers 400 pointing at /newPassword to a new password over 72 bytes', async () => {
    const { user, token } = await signUpAndLogin(t);
    // 30 characters, 90 bytes in UTF-8.
    const response = await change(token, {
      currentPassword: PASSWORD,
      newPassword: '€'.repeat(30),
    });
    expectValidationError(response, 'body', '/newPassword');
    expect((await login(user.email, PASSWORD)).statusCode).toBe(200);
  });

  it.each([
    [
      'a new password under 8 characters',
      { currentPassword: PASSWORD, newPassword: 'short' },
      '/newPassword',
    ],
    ['no new password', { currentPassword: PASSWORD }, '/newPassword'],
    ['no current password', { newPassword: NEW_PASSWORD }, '/currentPassword'],
    [
      'an empty current password',
      { currentPassword: '', newPassword: NEW_PASSWORD },
      '/currentPassword',
    ],
    [
      'an unknown property',
      { currentPassword: PASSWORD, newPassword: NEW_PASSWORD, password: NEW_PASSWORD },
      '/password',
    ],
  ])('answers 400 to %s', async (_name, payload, pointer) => {
    const { token } = await signUpAndLogin(t);
    expectValidationError(await change(token, payload), 'body', pointer);
  });

  it('settles a password change and a logout-all at the same time: every session ends, no error', async () => {
    for (let round = 0; round < 5; round += 1) {
      const { user, token } = await signUpAndLogin(t);
      const others = [await anotherSession(user.email), await anotherSession(user.email)];
      const [changed, loggedOut] = await Promise.all([
        change(token, { currentPassword: PASSWORD, newPassword: NEW_PASSWORD }),
        t.inject({
          method: 'POST',
          url: '/api/auth/logout-all',
          headers: bearer(others[0]!.accessToken),
        }),
      ]);
      expect(loggedOut.statusCode, loggedOut.body).toBe(204);
      // Before the logout-all, the change succeeds; after it, its session has ended.
      expect([200, 401], changed.body).toContain(changed.statusCode);
      const open = await t.db.sql(
        sql`select count(*)::int as n from sessions where user_id = ${user.id} and revoked_at is null`,
      );
      expect(open).toEqual([{ n: 0 }]);
      const password = changed.statusCode === 200 ? NEW_PASSWORD : PASSWORD;
      expect((await login(user.email, password)).statusCode).toBe(200);
    }
  });

  it('answers 401 without a token, and changes nothing', async () => {
    const { user } = await signUpAndLogin(t);
    const response = await t.inject({
      method: 'POST',
      url: '/api/auth/password/change',
      payload: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD },
    });
    expectProblem(response, 401, 'UNAUTHORIZED');
    expect((await login(user.email, PASSWORD)).statusCode).toBe(200);
  });
});

describe('access tokens are checked against their session', () => {
  it('accepts a well-signed token of a live session of its account', async () => {
    const { user, sessionId } = await signUpAndLogin(t);
    expect((await me(signAccessToken({ sub: user.id, sid: sessionId }))).statusCode).toBe(200);
  });

  it.each([
    ['without sid', (user: string) => ({ sub: user })],
    ['with a random sid', (user: string) => ({ sub: user, sid: UNKNOWN_ID })],
    ['with a sid that is not a UUID', (user: string) => ({ sub: user, sid: 'session-1' })],
    ["with another user's sid", (user: string, other: string) => ({ sub: user, sid: other })],
  ])('refuses a well-signed token %s with 401', async (_name, payload) => {
    const a = await signUpAndLogin(t);
    const b = await signUpAndLogin(t);
    const token = signAccessToken(payload(a.user.id, b.sessionId));
    await expectRefusedEverywhere(
      { userId: a.user.id, sessionId: a.sessionId },
      token,
      /not valid/,
    );
    // Neither account nor session was touched.
    expect((await me(a.token)).statusCode).toBe(200);
    expect((await me(b.token)).statusCode).toBe(200);
  });
});
