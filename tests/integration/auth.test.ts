import { sql } from 'drizzle-orm';
import { createSigner, type Algorithm } from 'fast-jwt';
import type { InjectOptions } from 'fastify';
import { describe, expect, it } from 'vitest';
import type { components } from '../../generated/api.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { TEST_JWT_SECRET, signUpAndLogin, useTestApp } from '../helpers/app.js';
import { expectProblem, expectValidationError } from '../helpers/problems.js';
import { securedCalls } from '../helpers/secured.js';
import { unique } from '../helpers/values.js';

type User = components['schemas']['User'];
type LoginResponse = components['schemas']['LoginResponse'];

const t = useTestApp();

/** The defaults of JWT_ISSUER and JWT_AUDIENCE (src/config/auth.ts). */
const ISSUER = 'contract-first-api';
const AUDIENCE = 'contract-first-api';
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';
const PASSWORD = 'correct horse battery staple';

function login(payload: unknown) {
  return t.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: payload as InjectOptions['payload'],
  });
}

function me(headers: Record<string, string> = {}) {
  return t.inject({ method: 'GET', url: '/api/auth/me', headers });
}

function bearer(token: string) {
  return { authorization: `Bearer ${token}` };
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

function decodePart(token: string, index: 0 | 1): Record<string, unknown> {
  const part = token.split('.')[index] ?? '';
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Whose token: the account (`sub`) and its session (`sid`). */
interface Owner {
  sub: unknown;
  sid: unknown;
}

/** The claims of a valid access token of `owner`, with some replaced or removed (undefined). */
function claims(owner: Owner, changes: Record<string, unknown> = {}): Record<string, unknown> {
  const all: Record<string, unknown> = {
    sub: owner.sub,
    sid: owner.sid,
    iss: ISSUER,
    aud: AUDIENCE,
    iat: nowSeconds(),
    exp: nowSeconds() + 900,
    ...changes,
  };
  return Object.fromEntries(Object.entries(all).filter(([, value]) => value !== undefined));
}

/** Signs exactly these claims (fast-jwt adds nothing but iat when it is missing). */
function sign(
  payload: Record<string, unknown>,
  options: { key?: string; algorithm?: Algorithm } = {},
): string {
  const signer = createSigner({
    key: options.key ?? TEST_JWT_SECRET,
    algorithm: options.algorithm ?? 'HS256',
  });
  return signer(payload);
}

describe('login: POST /api/auth/login', () => {
  it('answers a Bearer token that expires in 900 seconds and the account itself', async () => {
    const name = unique('a');
    const signUp = {
      email: `${name}@example.com`,
      username: name,
      password: PASSWORD,
      firstName: 'Ada',
    };
    const created = await t.inject({ method: 'POST', url: '/api/users', payload: signUp });
    expect(created.statusCode, created.body).toBe(201);

    const response = await login({ email: signUp.email, password: PASSWORD });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    const body = response.json<LoginResponse>();
    expect(Object.keys(body).sort()).toEqual([
      'accessToken',
      'expiresIn',
      'refreshToken',
      'refreshTokenExpiresAt',
      'tokenType',
      'user',
    ]);
    expect(body.tokenType).toBe('Bearer');
    expect(body.expiresIn).toBe(900);
    expect(body.user).toEqual(created.json<User>());
  });

  it('issues an HS256 JWT with sub, role, sid, issuer, audience and a 900-second lifetime', async () => {
    const { user, token } = await signUpAndLogin(t);
    expect(token.split('.')).toHaveLength(3);
    expect(decodePart(token, 0)).toMatchObject({ alg: 'HS256', typ: 'JWT' });
    const payload = decodePart(token, 1);
    expect(Object.keys(payload).sort()).toEqual(['aud', 'exp', 'iat', 'iss', 'role', 'sid', 'sub']);
    expect(payload).toMatchObject({ sub: user.id, role: 'user', iss: ISSUER, aud: AUDIENCE });
    const [session] = await t.db.sql(sql`select user_id from sessions where id = ${payload.sid}`);
    expect(session).toEqual({ user_id: user.id });
    expect(typeof payload.iat).toBe('number');
    expect(payload.exp).toBe(Number(payload.iat) + 900);
    expect(Math.abs(Number(payload.iat) - nowSeconds())).toBeLessThanOrEqual(60);
    expect(JSON.stringify(payload)).not.toContain(user.email);
  });

  it('finds the email address regardless of case', async () => {
    const name = unique('Ada');
    const email = `${name}@Example.com`;
    const { user } = await signUpAndLogin(t, { email });
    for (const variant of [email.toLowerCase(), email.toUpperCase()]) {
      const response = await login({ email: variant, password: PASSWORD });
      expect(response.statusCode, response.body).toBe(200);
      expect(response.json<LoginResponse>().user).toMatchObject({ id: user.id, email });
    }
  });

  it('answers 401 INVALID_CREDENTIALS to a wrong password', async () => {
    const { user } = await signUpAndLogin(t);
    const problem = expectProblem(
      await login({ email: user.email, password: 'wrong horse battery staple' }),
      401,
      'INVALID_CREDENTIALS',
    );
    expect(problem).toMatchObject({
      title: 'Invalid credentials',
      detail: 'The email address or the password is wrong.',
      instance: '/api/auth/login',
    });
  });

  it('compares passwords exactly: another case or extra spaces are wrong', async () => {
    const { user } = await signUpAndLogin(t);
    for (const password of [PASSWORD.toUpperCase(), ` ${PASSWORD}`, `${PASSWORD} `]) {
      expectProblem(await login({ email: user.email, password }), 401, 'INVALID_CREDENTIALS');
    }
  });

  it('answers an unknown email address exactly as a wrong password', async () => {
    const { user } = await signUpAndLogin(t);
    const wrongPassword = await login({ email: user.email, password: 'wrong horse battery' });
    const unknownEmail = await login({
      email: `${unique('nobody')}@example.com`,
      password: PASSWORD,
    });
    expectProblem(unknownEmail, 401, 'INVALID_CREDENTIALS');
    expect(unknownEmail.json()).toEqual(wrongPassword.json());
    expect(unknownEmail.headers['content-type']).toBe(wrongPassword.headers['content-type']);
  });

  it('refuses a password longer than 72 bytes whose first 72 bytes are the password', async () => {
    // bcrypt reads 72 bytes at most: what follows must not be ignored at login.
    const password = 'p'.repeat(72);
    const { user } = await signUpAndLogin(t, { password });
    expect((await login({ email: user.email, password })).statusCode).toBe(200);
    for (const longer of [`${password}x`, `${password}${'€'.repeat(10)}`]) {
      expectProblem(
        await login({ email: user.email, password: longer }),
        401,
        'INVALID_CREDENTIALS',
      );
    }
  });

  it('answers 403 ACCOUNT_DISABLED to the right password of a disabled account', async () => {
    const { user } = await signUpAndLogin(t);
    await t.db.sql(sql`update users set is_active = false where id = ${user.id}`);
    const problem = expectProblem(
      await login({ email: user.email, password: PASSWORD }),
      403,
      'ACCOUNT_DISABLED',
    );
    expect(problem).toMatchObject({ title: 'Account disabled', instance: '/api/auth/login' });

    await t.db.sql(sql`update users set is_active = true where id = ${user.id}`);
    expect((await login({ email: user.email, password: PASSWORD })).statusCode).toBe(200);
  });

  it('answers 401, not 403, to a wrong password of a disabled account', async () => {
    const { user } = await signUpAndLogin(t);
    await t.db.sql(sql`update users set is_active = false where id = ${user.id}`);
    expectProblem(
      await login({ email: user.email, password: 'wrong horse battery staple' }),
      401,
      'INVALID_CREDENTIALS',
    );
  });

  it.each([
    ['a missing password', { email: 'ada@example.com' }, '/password'],
    ['a missing email address', { password: PASSWORD }, '/email'],
    ['an empty email address', { email: '', password: PASSWORD }, '/email'],
    ['an empty password', { email: 'ada@example.com', password: '' }, '/password'],
    [
      'a password of 1025 characters',
      { email: 'a@example.com', password: 'p'.repeat(1025) },
      '/password',
    ],
    ['a numeric password', { email: 'ada@example.com', password: 12345678 }, '/password'],
    [
      'an unknown property',
      { email: 'ada@example.com', password: PASSWORD, remember: true },
      '/remember',
    ],
  ])('answers 400 to %s', async (_name, payload, pointer) => {
    expectValidationError(await login(payload), 'body', pointer);
  });
});

describe('password hashes at a lower cost than configured', () => {
  it('are redone at the configured cost at the next successful login', async () => {
    const { user, password } = await signUpAndLogin(t);
    const roundsOf = async () => {
      const [row] = await t.db.sql(sql`select password_hash from users where id = ${user.id}`);
      return Number(String(row?.password_hash).split('$')[2]);
    };
    expect(await roundsOf()).toBe(4);

    // The same database, served by an app configured with a higher cost.
    const costlier = await buildApp(
      loadConfig({
        NODE_ENV: 'test',
        LOG_LEVEL: 'silent',
        JWT_SECRET: TEST_JWT_SECRET,
        BCRYPT_COST: '5',
        DATABASE_URL: t.db.url,
      }),
    );
    try {
      const payload = { email: user.email, password };
      const wrong = { email: user.email, password: `${password}!` };
      expect(
        (await costlier.inject({ method: 'POST', url: '/api/auth/login', payload: wrong }))
          .statusCode,
      ).toBe(401);
      expect(await roundsOf()).toBe(4);
      expect(
        (await costlier.inject({ method: 'POST', url: '/api/auth/login', payload })).statusCode,
      ).toBe(200);
      expect(await roundsOf()).toBe(5);
      // The new hash still takes the same password, anywhere.
      expect((await login(payload)).statusCode).toBe(200);
    } finally {
      await costlier.close();
    }
  });
});

describe('getMe: GET /api/auth/me', () => {
  it('answers the full account of the token holder', async () => {
    const { user, auth } = await signUpAndLogin(t, { firstName: 'Me', lastName: 'Myself' });
    const response = await me(auth);
    expect(response.statusCode, response.body).toBe(200);
    const account = response.json<User>();
    expect(account).toMatchObject({
      id: user.id,
      email: user.email,
      username: user.username,
      firstName: 'Me',
      lastName: 'Myself',
      isActive: true,
      emailVerified: false,
      role: 'user',
    });
  });

  it('answers the same account as login did', async () => {
    const { user } = await signUpAndLogin(t);
    const loggedIn = (await login({ email: user.email, password: PASSWORD })).json<LoginResponse>();
    const response = await me(bearer(loggedIn.accessToken));
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<User>()).toEqual(loggedIn.user);
  });

  it('tells two users apart', async () => {
    const a = await signUpAndLogin(t);
    const b = await signUpAndLogin(t);
    expect((await me(a.auth)).json<User>().id).toBe(a.user.id);
    expect((await me(b.auth)).json<User>().id).toBe(b.user.id);
  });

  it('shows changes made after the token was issued', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const username = unique('changed');
    const patched = await t.inject({
      method: 'PATCH',
      url: `/api/users/${user.id}`,
      headers: auth,
      payload: { username },
    });
    expect(patched.statusCode, patched.body).toBe(200);
    expect((await me(auth)).json<User>().username).toBe(username);
  });

  it('answers 401 to the token of a deleted account on every secured operation', async () => {
    const { user, auth, sessionId } = await signUpAndLogin(t);
    const deleted = await t.inject({
      method: 'DELETE',
      url: `/api/users/${user.id}`,
      headers: auth,
    });
    expect(deleted.statusCode, deleted.body).toBe(200);
    for (const { operationId, request } of securedCalls({ userId: user.id, sessionId }, auth)) {
      const problem = expectProblem(await t.inject(request), 401, 'UNAUTHORIZED');
      expect(problem.detail, operationId).toMatch(/no longer exists/);
    }
  });

  it('answers 401 to the token of a disabled account on every secured operation, until it is enabled again', async () => {
    const { user, auth, sessionId } = await signUpAndLogin(t);
    await t.db.sql(sql`update users set is_active = false where id = ${user.id}`);
    for (const { operationId, request } of securedCalls({ userId: user.id, sessionId }, auth)) {
      const problem = expectProblem(await t.inject(request), 401, 'UNAUTHORIZED');
      expect(problem.detail, operationId).toMatch(/disabled/);
    }
    await t.db.sql(sql`update users set is_active = true where id = ${user.id}`);
    expect((await me(auth)).statusCode).toBe(200);
  });

  it('answers 401 without a token', async () => {
    const problem = expectProblem(await me(), 401, 'UNAUTHORIZED');
    expect(problem.instance).toBe('/api/auth/me');
  });
});

describe('token security', () => {
  it('accepts a token from login', async () => {
    const { user, token } = await signUpAndLogin(t);
    const response = await me(bearer(token));
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<User>().id).toBe(user.id);
  });

  // The forgeries below change one thing each from this token, which is accepted.
  it('accepts a token signed here with the right secret and claims', async () => {
    const { user, sessionId } = await signUpAndLogin(t);
    const response = await me(bearer(sign(claims({ sub: user.id, sid: sessionId }))));
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<User>().id).toBe(user.id);
  });

  /** Each case turns an existing account and its live session into an Authorization header. */
  const refused: Array<[string, (owner: Owner) => Record<string, string>]> = [
    ['no Authorization header', () => ({})],
    ['an empty Authorization header', () => ({ authorization: '' })],
    ['the Basic scheme', () => ({ authorization: 'Basic YWRhOnBhc3N3b3Jk' })],
    ['"Bearer" with no token', () => ({ authorization: 'Bearer' })],
    ['"Bearer " with no token', () => ({ authorization: 'Bearer ' })],
    ['a token that is not a JWT', () => bearer('garbage')],
    ['three parts of garbage', () => bearer('abc.def.ghi')],
    [
      'a valid token without the Bearer scheme',
      (owner) => ({ authorization: sign(claims(owner)) }),
    ],
    [
      'a token signed with another secret',
      (owner) =>
        bearer(sign(claims(owner), { key: 'another-secret-that-is-at-least-32-characters' })),
    ],
    [
      'an unsigned token (alg none)',
      (owner) => bearer(`${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(claims(owner))}.`),
    ],
    [
      'an unsigned token (alg None)',
      (owner) => bearer(`${base64url({ alg: 'None', typ: 'JWT' })}.${base64url(claims(owner))}.`),
    ],
    [
      'an HS256 header with the signature removed',
      (owner) => {
        const [header, payload] = sign(claims(owner)).split('.');
        return bearer(`${header}.${payload}.`);
      },
    ],
    [
      'HS512 with the right secret (HS256 is pinned)',
      (owner) => bearer(sign(claims(owner), { algorithm: 'HS512' })),
    ],
    [
      'HS384 with the right secret (HS256 is pinned)',
      (owner) => bearer(sign(claims(owner), { algorithm: 'HS384' })),
    ],
    [
      'an expired token',
      (owner) => bearer(sign(claims(owner, { iat: nowSeconds() - 1000, exp: nowSeconds() - 100 }))),
    ],
    [
      'a token not valid yet (nbf in the future)',
      (owner) => bearer(sign(claims(owner, { nbf: nowSeconds() + 600 }))),
    ],
    ['a wrong issuer', (owner) => bearer(sign(claims(owner, { iss: 'someone-else' })))],
    ['a wrong audience', (owner) => bearer(sign(claims(owner, { aud: 'someone-else' })))],
    ['no issuer', (owner) => bearer(sign(claims(owner, { iss: undefined })))],
    ['no audience', (owner) => bearer(sign(claims(owner, { aud: undefined })))],
    ['no exp', (owner) => bearer(sign(claims(owner, { exp: undefined })))],
    ['no sub', (owner) => bearer(sign(claims(owner, { sub: undefined })))],
    ['a sub that is not a uuid', (owner) => bearer(sign(claims(owner, { sub: 'not-a-uuid' })))],
    ['a numeric sub', (owner) => bearer(sign(claims(owner, { sub: 12345 })))],
    ['an empty sub', (owner) => bearer(sign(claims(owner, { sub: '' })))],
    ['no sid', (owner) => bearer(sign(claims(owner, { sid: undefined })))],
    ['a sid that is not a uuid', (owner) => bearer(sign(claims(owner, { sid: 'not-a-uuid' })))],
    ['a numeric sid', (owner) => bearer(sign(claims(owner, { sid: 12345 })))],
    ['a random sid', (owner) => bearer(sign(claims(owner, { sid: UNKNOWN_ID })))],
  ];

  it.each(refused)('answers 401 UNAUTHORIZED on GET /api/auth/me to %s', async (_name, header) => {
    const { user, sessionId } = await signUpAndLogin(t);
    const problem = expectProblem(
      await me(header({ sub: user.id, sid: sessionId })),
      401,
      'UNAUTHORIZED',
    );
    expect(problem).toMatchObject({ title: 'Unauthorized', instance: '/api/auth/me' });
  });

  it('says that an expired token has expired', async () => {
    const { user, sessionId } = await signUpAndLogin(t);
    const expired = sign(
      claims(
        { sub: user.id, sid: sessionId },
        { iat: nowSeconds() - 1000, exp: nowSeconds() - 100 },
      ),
    );
    const problem = expectProblem(await me(bearer(expired)), 401, 'UNAUTHORIZED');
    expect(problem.detail).toMatch(/expired/i);
  });

  it('answers 401 to a valid token for a well-formed id that has no account', async () => {
    const { sessionId } = await signUpAndLogin(t);
    expectProblem(
      await me(bearer(sign(claims({ sub: UNKNOWN_ID, sid: sessionId })))),
      401,
      'UNAUTHORIZED',
    );
  });

  it("answers 401 to a token whose sub was changed to another user's id", async () => {
    const a = await signUpAndLogin(t);
    const b = await signUpAndLogin(t);
    const [header, payload, signature] = a.token.split('.');
    const claimsOfA = JSON.parse(
      Buffer.from(payload ?? '', 'base64url').toString('utf8'),
    ) as object;
    const tampered = `${header}.${base64url({ ...claimsOfA, sub: b.user.id })}.${signature}`;
    expectProblem(await me(bearer(tampered)), 401, 'UNAUTHORIZED');
    // The untouched token still works, for A only.
    expect((await me(a.auth)).json<User>().id).toBe(a.user.id);
  });

  it("answers 401 to forged tokens on another's PATCH and DELETE; nothing changes", async () => {
    const a = await signUpAndLogin(t);
    const b = await signUpAndLogin(t, { firstName: 'Bea' });
    const before = (await me(b.auth)).json<User>();
    const ownerB = { sub: b.user.id, sid: b.sessionId };
    const [header, payload, signature] = a.token.split('.');
    const claimsOfA = JSON.parse(
      Buffer.from(payload ?? '', 'base64url').toString('utf8'),
    ) as object;
    const forgeries = [
      `${header}.${base64url({ ...claimsOfA, sub: b.user.id })}.${signature}`,
      `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(claims(ownerB))}.`,
      sign(claims(ownerB), { key: 'another-secret-that-is-at-least-32-characters' }),
      sign(claims(ownerB), { algorithm: 'HS512' }),
      sign(claims(ownerB, { iat: nowSeconds() - 1000, exp: nowSeconds() - 100 })),
      // A's session under B's name: the session is not B's.
      sign(claims({ sub: b.user.id, sid: a.sessionId })),
    ];
    for (const forged of forgeries) {
      const url = `/api/users/${b.user.id}`;
      const patch = await t.inject({
        method: 'PATCH',
        url,
        headers: bearer(forged),
        payload: { firstName: 'Hacked' },
      });
      expectProblem(patch, 401, 'UNAUTHORIZED');
      expectProblem(
        await t.inject({ method: 'DELETE', url, headers: bearer(forged) }),
        401,
        'UNAUTHORIZED',
      );
    }
    expect((await me(b.auth)).json<User>()).toEqual(before);
  });

  it("answers 403 to A's valid token on B's PATCH and DELETE; B stays as it was", async () => {
    const a = await signUpAndLogin(t);
    const b = await signUpAndLogin(t, { firstName: 'Bea' });
    const before = (await me(b.auth)).json<User>();
    const url = `/api/users/${b.user.id}`;
    const patch = await t.inject({
      method: 'PATCH',
      url,
      headers: a.auth,
      payload: { firstName: 'Hacked', username: unique('hijacked') },
    });
    expectProblem(patch, 403, 'FORBIDDEN');
    expectProblem(await t.inject({ method: 'DELETE', url, headers: a.auth }), 403, 'FORBIDDEN');
    expect((await me(b.auth)).json<User>()).toEqual(before);
    expect((await login({ email: b.user.email, password: b.password })).statusCode).toBe(200);
  });

  it('keeps a token valid for its account after the email address changes', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const email = `${unique('renamed')}@example.com`;
    const patched = await t.inject({
      method: 'PATCH',
      url: `/api/users/${user.id}`,
      headers: auth,
      payload: { email },
    });
    expect(patched.statusCode, patched.body).toBe(200);
    const response = await me(auth);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<User>()).toMatchObject({ id: user.id, email });
  });
});
