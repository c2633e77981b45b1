import { sql } from 'drizzle-orm';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { components } from '../../generated/api.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { TEST_JWT_SECRET, signUpAndLogin, useTestApp } from '../helpers/app.js';
import { ageTokens, latestToken, outboxFor, tokenIn } from '../helpers/mail.js';
import { expectInvalid, expectProblem } from '../helpers/problems.js';
import { observeResponses } from '../helpers/observe.js';
import { unique } from '../helpers/values.js';

type User = components['schemas']['User'];

const PUBLIC_URL = 'https://app.example.test/base';
const t = useTestApp({ EMAIL_POLL_INTERVAL: '0', PUBLIC_URL });

function verify(token: string) {
  return t.inject({ method: 'POST', url: '/api/auth/email/verify', payload: { token } });
}

function resend(headers: Record<string, string>) {
  return t.inject({ method: 'POST', url: '/api/auth/email/resend', headers });
}

async function me(headers: Record<string, string>): Promise<User> {
  const response = await t.inject({ method: 'GET', url: '/api/auth/me', headers });
  expect(response.statusCode).toBe(200);
  return response.json<User>();
}

function changeEmail(id: string, email: string, headers: Record<string, string>) {
  return t.inject({ method: 'PATCH', url: `/api/users/${id}`, headers, payload: { email } });
}

const verifications = async (address: string) =>
  (await outboxFor(t, address)).filter((e) => e.kind === 'email_verification');

describe('sign-up', () => {
  it('queues a verification link to the new address, in the same transaction', async () => {
    const { user } = await signUpAndLogin(t);
    const emails = await verifications(user.email);
    expect(emails).toHaveLength(1);
    expect(emails[0]).toMatchObject({
      recipient: user.email,
      subject: 'Confirm your email address',
      sent_at: null,
    });
    const token = tokenIn(emails[0]!.text_body, 'verify-email');
    expect(emails[0]!.text_body).toContain(`${PUBLIC_URL}/verify-email?token=${token}`);
    expect(emails[0]!.text_body).toContain('48 hours');
    const tokens = await t.db.sql(sql`
      select email, extract(epoch from expires_at - now())::float8 as ttl from email_tokens
      where user_id = ${user.id} and purpose = 'email_verification'`);
    expect(tokens).toEqual([{ email: user.email, ttl: expect.any(Number) }]);
    expect(tokens[0]!.ttl).toBeGreaterThan(48 * 3600 - 10);
  });

  it('queues nothing when the sign-up fails', async () => {
    const { user } = await signUpAndLogin(t);
    const twin = await t.inject({
      method: 'POST',
      url: '/api/users',
      payload: { email: user.email, username: unique('twin'), password: 'long enough password' },
    });
    expectProblem(twin, 409, 'CONFLICT');
    expect(await verifications(user.email)).toHaveLength(1);
  });
});

describe('verifyEmail: POST /api/auth/email/verify', () => {
  it('marks the address verified (getMe shows it), once', async () => {
    const { user, auth } = await signUpAndLogin(t);
    expect((await me(auth)).emailVerified).toBe(false);
    const token = await latestToken(t, user.email, 'email_verification');
    const response = await verify(token);
    expect(response.statusCode, response.body).toBe(204);
    expect(response.body).toBe('');
    expect(response.headers['x-ratelimit-limit']).toBeDefined();
    expect((await me(auth)).emailVerified).toBe(true);

    const again = expectInvalid(await verify(token), 'body', ['/token']);
    expect(again.detail).toBe('This verification link is not valid. Ask for a new one.');
  });

  it('refuses a token sent to the previous address once the address has changed', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const oldToken = await latestToken(t, user.email, 'email_verification');
    const newAddress = `${unique('moved')}@example.com`;
    const changed = await changeEmail(user.id, newAddress, auth);
    expect(changed.statusCode, changed.body).toBe(200);

    const refused = expectInvalid(await verify(oldToken), 'body', ['/token']);
    expect(refused.detail).toBe(
      'This verification link was sent to an address the account no longer uses.',
    );
    expect((await me(auth)).emailVerified).toBe(false);

    // The change queued a link to the new address, which verifies it.
    const emails = await verifications(newAddress);
    expect(emails.map((e) => e.recipient)).toEqual([newAddress]);
    expect((await verify(tokenIn(emails[0]!.text_body, 'verify-email'))).statusCode).toBe(204);
    expect(await me(auth)).toMatchObject({ email: newAddress, emailVerified: true });
  });

  it('sends nothing when the address changes only in letter case, and keeps it verified', async () => {
    const { user, auth } = await signUpAndLogin(t);
    expect((await verify(await latestToken(t, user.email, 'email_verification'))).statusCode).toBe(
      204,
    );
    const changed = await changeEmail(user.id, user.email.toUpperCase(), auth);
    expect(changed.statusCode).toBe(200);
    expect(changed.json<User>().emailVerified).toBe(true);
    expect(await verifications(user.email)).toHaveLength(1);
  });

  it('queues nothing when the change of address fails', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const other = await signUpAndLogin(t);
    expectProblem(await changeEmail(user.id, other.user.email, auth), 409, 'CONFLICT');
    expect(await verifications(other.user.email)).toHaveLength(1);
  });

  it('refuses an expired token, a reset token and an unknown one', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const token = await latestToken(t, user.email, 'email_verification');
    await t.db.sql(sql`
      update email_tokens set expires_at = now() - interval '1 second'
      where user_id = ${user.id} and purpose = 'email_verification'`);
    expectInvalid(await verify(token), 'body', ['/token']);

    const forgot = await t.inject({
      method: 'POST',
      url: '/api/auth/password/forgot',
      payload: { email: user.email },
    });
    expect(forgot.statusCode).toBe(202);
    expectInvalid(await verify(await latestToken(t, user.email, 'password_reset')), 'body', [
      '/token',
    ]);
    expectInvalid(await verify('B'.repeat(43)), 'body', ['/token']);
    expectInvalid(await verify('not a token'), 'body', ['/token']);
    expect((await me(auth)).emailVerified).toBe(false);
  });
});

describe('resendVerification: POST /api/auth/email/resend', () => {
  it('queues a new link, at most one a minute (the sign-up one counted), answering 202 alike', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const first = await resend(auth);
    expect(first.statusCode, first.body).toBe(202);
    expect(first.json()).toEqual({
      message: `A verification link is on its way to ${user.email}.`,
    });
    // Within a minute of the sign-up's email: nothing more.
    expect(await verifications(user.email)).toHaveLength(1);

    await ageTokens(t, user.email, 61);
    expect((await resend(auth)).statusCode).toBe(202);
    expect((await resend(auth)).statusCode).toBe(202);
    const emails = await verifications(user.email);
    expect(emails).toHaveLength(2);
    // Both links work until used (each is a token of its own).
    expect((await verify(tokenIn(emails[1]!.text_body, 'verify-email'))).statusCode).toBe(204);
  });

  it('answers 409 on email when the address is verified already', async () => {
    const { user, auth } = await signUpAndLogin(t);
    expect((await verify(await latestToken(t, user.email, 'email_verification'))).statusCode).toBe(
      204,
    );
    const problem = expectProblem(await resend(auth), 409, 'CONFLICT');
    expect(problem.errors).toEqual([
      { location: 'body', pointer: '/email', message: 'is verified already' },
    ]);
  });

  it('answers 401 without a valid access token, with the rate-limit headers', async () => {
    const response = await resend({});
    expectProblem(response, 401, 'UNAUTHORIZED');
    expect(response.headers['x-ratelimit-remaining']).toBeDefined();
    expectProblem(await resend({ authorization: 'Bearer nope' }), 401, 'UNAUTHORIZED');
  });

  it('answers 401 to the token of a deleted account', async () => {
    const { user, auth } = await signUpAndLogin(t);
    await t.db.sql(sql`delete from users where id = ${user.id}`);
    expectProblem(await resend(auth), 401, 'UNAUTHORIZED');
  });
});

describe('bad input', () => {
  const requests: Array<[string, string]> = [
    ['requestPasswordReset', '/api/auth/password/forgot'],
    ['resetPassword', '/api/auth/password/reset'],
    ['verifyEmail', '/api/auth/email/verify'],
  ];

  it.each(requests)('%s refuses a body that is not JSON with 415', async (_name, url) => {
    const response = await t.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'text/plain' },
      payload: 'token=abc',
    });
    expectProblem(response, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it.each(requests)('%s refuses an empty object with 400', async (_name, url) => {
    expectProblem(await t.inject({ method: 'POST', url, payload: {} }), 400, 'VALIDATION_ERROR');
  });

  it.each(requests)('%s refuses an over-large body with 413', async (_name, url) => {
    const response = await t.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ token: 'x'.repeat(1_100_000) }),
    });
    expectProblem(response, 413, 'PAYLOAD_TOO_LARGE');
  });

  it('resendVerification refuses a body that is not JSON with 415', async () => {
    const { auth } = await signUpAndLogin(t);
    const response = await t.inject({
      method: 'POST',
      url: '/api/auth/email/resend',
      headers: { ...auth, 'content-type': 'text/plain' },
      payload: 'hello',
    });
    expectProblem(response, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });
});

describe('rate limits', () => {
  const limited = useTestApp({
    EMAIL_POLL_INTERVAL: '0',
    RATE_LIMIT_AUTH_MAX: '',
    RATE_LIMIT_REQUEST_PASSWORD_RESET_MAX: '2',
    RATE_LIMIT_RESET_PASSWORD_MAX: '2',
    RATE_LIMIT_VERIFY_EMAIL_MAX: '2',
    RATE_LIMIT_RESEND_VERIFICATION_MAX: '2',
  });

  it.each([
    [
      'requestPasswordReset',
      { url: '/api/auth/password/forgot', payload: { email: 'a@example.com' } },
    ],
    [
      'resetPassword',
      {
        url: '/api/auth/password/reset',
        payload: { token: 'C'.repeat(43), newPassword: 'long enough' },
      },
    ],
    ['verifyEmail', { url: '/api/auth/email/verify', payload: { token: 'C'.repeat(43) } }],
    ['resendVerification', { url: '/api/auth/email/resend' }],
  ] as Array<[string, InjectOptions]>)(
    '%s answers 429 past the limit per client',
    async (_name, request) => {
      // One client for all: each operation is counted apart.
      const remoteAddress = '198.51.100.20';
      for (let i = 0; i < 2; i += 1) {
        expect(
          (await limited.inject({ ...request, method: 'POST', remoteAddress })).statusCode,
        ).not.toBe(429);
      }
      const refused = await limited.inject({ ...request, method: 'POST', remoteAddress });
      expectProblem(refused, 429, 'RATE_LIMITED');
      expect(refused.headers['retry-after']).toBeDefined();
    },
  );
});

describe('an unreachable database', () => {
  let app: FastifyInstance;
  let observed: { take(): string[] };

  beforeAll(async () => {
    app = await buildApp(
      loadConfig({
        NODE_ENV: 'test',
        LOG_LEVEL: 'silent',
        JWT_SECRET: TEST_JWT_SECRET,
        DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere',
        DB_CONNECT_TIMEOUT_MS: '500',
        EMAIL_POLL_INTERVAL: '0',
      }),
    );
    observed = observeResponses(app);
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
  });
  afterEach(() => {
    expect(observed.take(), 'responses outside the contract').toEqual([]);
  });

  it.each([
    ['requestPasswordReset', '/api/auth/password/forgot', { email: 'a@example.com' }],
    [
      'resetPassword',
      '/api/auth/password/reset',
      { token: 'D'.repeat(43), newPassword: 'long enough' },
    ],
    ['verifyEmail', '/api/auth/email/verify', { token: 'D'.repeat(43) }],
  ])('%s answers 503', async (_name, url, payload) => {
    const response = await app.inject({ method: 'POST', url, payload });
    expectProblem(response, 503, 'SERVICE_UNAVAILABLE');
  });

  it('resendVerification answers 503', async () => {
    const token = app.jwt.sign({
      sub: '0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10',
      sid: '6f1d2c3b-4a59-4e8d-8c7b-1a2b3c4d5e6f',
      role: 'user',
    });
    const response = await app.inject({
      method: 'POST',
      url: '/api/auth/email/resend',
      headers: { authorization: `Bearer ${token}` },
    });
    expectProblem(response, 503, 'SERVICE_UNAVAILABLE');
  });
});
