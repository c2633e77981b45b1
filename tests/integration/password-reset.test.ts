import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { createPasswordHasher } from '../../src/lib/passwords.js';
import { createAccountRepository } from '../../src/modules/account/repository.js';
import { createAccountService } from '../../src/modules/account/service.js';
import { createAccountMail } from '../../src/modules/email/account-mail.js';
import { signUpAndLogin, useTestApp } from '../helpers/app.js';
import { ageTokens, latestToken, outboxFor, tokenIn } from '../helpers/mail.js';
import { expectInvalid, expectProblem } from '../helpers/problems.js';
import { securedCalls } from '../helpers/secured.js';
import { unique } from '../helpers/values.js';

const PUBLIC_URL = 'https://app.example.test';
// The poll is off: nothing is sent behind the tests' backs; the outbox is read instead.
const t = useTestApp({ EMAIL_POLL_INTERVAL: '0', PUBLIC_URL });

const onPostgres = process.env.TEST_DATABASE_URL !== undefined;
const ACCEPTED = { message: 'If an account uses this address, a reset link is on its way.' };
const NEW_PASSWORD = 'a much better passphrase';

function forgot(email: string, headers: Record<string, string> = {}) {
  return t.inject({
    method: 'POST',
    url: '/api/auth/password/forgot',
    payload: { email },
    headers,
  });
}

function reset(token: string, newPassword = NEW_PASSWORD) {
  return t.inject({
    method: 'POST',
    url: '/api/auth/password/reset',
    payload: { token, newPassword },
  });
}

function login(email: string, password: string) {
  return t.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password } });
}

/** What a response says, less what differs on every request (its id, the limit's count). */
function comparable(response: LightMyRequestResponse) {
  const headers = { ...response.headers };
  for (const name of ['x-request-id', 'x-ratelimit-remaining', 'x-ratelimit-reset']) {
    expect(headers[name], name).toBeDefined();
    delete headers[name];
  }
  // The clock's reading: two answers a second apart differ in it whatever they say.
  delete headers.date;
  return { status: response.statusCode, headers, body: response.body };
}

async function resetTokenFor(email: string): Promise<string> {
  expect((await forgot(email)).statusCode).toBe(202);
  return latestToken(t, email, 'password_reset');
}

describe('requestPasswordReset: POST /api/auth/password/forgot', () => {
  it('queues a reset link to the account address, built from PUBLIC_URL, token stored hashed', async () => {
    const { user } = await signUpAndLogin(t);
    const response = await forgot(user.email);
    expect(response.statusCode, response.body).toBe(202);
    expect(response.json()).toEqual(ACCEPTED);
    expect(response.headers['x-ratelimit-limit']).toBeDefined();

    const emails = (await outboxFor(t, user.email)).filter((e) => e.kind === 'password_reset');
    expect(emails).toHaveLength(1);
    const [email] = emails;
    expect(email).toMatchObject({
      recipient: user.email,
      subject: 'Reset your password',
      attempts: 0,
      sent_at: null,
    });
    const token = tokenIn(email!.text_body, 'reset-password');
    expect(email!.text_body).toContain(`${PUBLIC_URL}/reset-password?token=${token}`);
    expect(email!.html_body).toContain(`href="${PUBLIC_URL}/reset-password?token=${token}"`);
    expect(email!.text_body).toContain('30 minutes');

    const tokens = await t.db.sql(sql`
      select token_hash, purpose, email, used_at,
             extract(epoch from expires_at - now())::float8 as ttl
      from email_tokens where user_id = ${user.id} and purpose = 'password_reset'`);
    expect(tokens).toHaveLength(1);
    expect(tokens[0]).toMatchObject({
      token_hash: createHash('sha256').update(token).digest('hex'),
      email: user.email,
      used_at: null,
    });
    expect(tokens[0]!.ttl).toBeGreaterThan(1790);
    expect(tokens[0]!.ttl).toBeLessThanOrEqual(1800);
    // The token itself is nowhere in the database but in the email.
    const found = await t.db.sql(
      sql`select count(*)::int as n from email_tokens where token_hash = ${token}`,
    );
    expect(found[0]!.n).toBe(0);
  });

  it('answers an unknown or disabled address exactly as a known one, and queues nothing for it', async () => {
    const { user } = await signUpAndLogin(t);
    const disabled = await signUpAndLogin(t);
    await t.db.sql(sql`update users set is_active = false where id = ${disabled.user.id}`);
    const unknownAddress = `${unique('nobody')}@example.com`;

    const known = comparable(await forgot(user.email));
    expect(known.status).toBe(202);
    expect(comparable(await forgot(unknownAddress))).toEqual(known);
    expect(comparable(await forgot(disabled.user.email))).toEqual(known);

    expect(await outboxFor(t, unknownAddress)).toEqual([]);
    expect(
      (await outboxFor(t, disabled.user.email)).filter((e) => e.kind === 'password_reset'),
    ).toEqual([]);
    const tokens = await t.db.sql(sql`
      select count(*)::int as n from email_tokens
      where user_id = ${disabled.user.id} and purpose = 'password_reset'`);
    expect(tokens[0]!.n).toBe(0);
  });

  it('finds the address regardless of case and writes to the address the account uses', async () => {
    const email = `${unique('Mixed')}@Example.com`;
    await signUpAndLogin(t, { email });
    expect((await forgot(email.toUpperCase())).statusCode).toBe(202);
    const emails = (await outboxFor(t, email)).filter((e) => e.kind === 'password_reset');
    expect(emails.map((e) => e.recipient)).toEqual([email]);
  });

  it('sends at most one email per address a minute, answering the same every time', async () => {
    const { user } = await signUpAndLogin(t);
    const first = comparable(await forgot(user.email));
    expect(comparable(await forgot(user.email))).toEqual(first);
    expect(comparable(await forgot(user.email.toUpperCase()))).toEqual(first);
    const resets = async () =>
      (await outboxFor(t, user.email)).filter((e) => e.kind === 'password_reset');
    expect(await resets()).toHaveLength(1);

    await ageTokens(t, user.email, 61);
    await forgot(user.email);
    expect(await resets()).toHaveLength(2);
  });

  it('sends one email for concurrent requests', async () => {
    const { user } = await signUpAndLogin(t);
    const responses = await Promise.all(Array.from({ length: 20 }, () => forgot(user.email)));
    expect(responses.map((r) => r.statusCode)).toEqual(Array(20).fill(202));
    expect(
      (await outboxFor(t, user.email)).filter((e) => e.kind === 'password_reset'),
    ).toHaveLength(1);
    const tokens = await t.db.sql(sql`
      select count(*)::int as n from email_tokens
      where user_id = ${user.id} and purpose = 'password_reset'`);
    expect(tokens[0]!.n).toBe(1);
  });

  // PGlite runs one transaction at a time: two cannot overlap there, and neither can race.
  it.skipIf(!onPostgres)(
    'holds by itself: a second transaction that overlaps the first sends nothing, whatever the caller locked',
    async () => {
      const { user } = await signUpAndLogin(t);
      const recipient = { id: user.id, email: user.email };
      const mail = createAccountMail({
        publicUrl: PUBLIC_URL,
        passwordResetTtlSeconds: 1800,
        verificationTtlSeconds: 3600,
      });
      const { db } = t.db.database;
      // The first one queues its email and stays open, uncommitted; the second one starts.
      let queued!: () => void;
      const firstQueued = new Promise<void>((resolve) => (queued = resolve));
      let commit!: () => void;
      const committing = new Promise<void>((resolve) => (commit = resolve));
      const first = db.transaction(async (tx) => {
        const sent = await mail.sendPasswordReset(tx, recipient, user.email);
        queued();
        await committing;
        return sent;
      });
      await firstQueued;
      const second = db.transaction((tx) => mail.sendPasswordReset(tx, recipient, user.email));
      // A check made before the first commits would let the second through at once; the
      // throttle's row makes it wait for the first: either is the signal to go on.
      const waiting = async () => {
        const [row] = await t.db.sql(sql`
          select count(*)::int as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`);
        return Number(row?.n) > 0;
      };
      let settled = false;
      void second.finally(() => (settled = true));
      for (let i = 0; i < 400 && !settled && !(await waiting()); i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      commit();
      expect([await first, await second]).toEqual([true, false]);
      expect(
        (await outboxFor(t, user.email)).filter((e) => e.kind === 'password_reset'),
      ).toHaveLength(1);
    },
  );

  it('builds links from PUBLIC_URL only, whatever Host or X-Forwarded-Host say', async () => {
    const { user } = await signUpAndLogin(t);
    await forgot(user.email, {
      host: 'evil.example',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'http',
    });
    const [email] = (await outboxFor(t, user.email)).filter((e) => e.kind === 'password_reset');
    expect(email!.text_body).toContain(`${PUBLIC_URL}/reset-password?token=`);
    expect(`${email!.text_body}${email!.html_body}`).not.toContain('evil');
  });

  it('refuses a malformed address with 400, counted by the rate limit', async () => {
    const response = await forgot('not-an-address');
    expectInvalid(response, 'body', ['/email']);
    expect(response.headers['x-ratelimit-remaining']).toBeDefined();
  });
});

describe('resetPassword: POST /api/auth/password/reset', () => {
  it('sets the new password: the old one fails, the new one logs in', async () => {
    const { user, password } = await signUpAndLogin(t);
    const token = await resetTokenFor(user.email);
    const response = await reset(token);
    expect(response.statusCode, response.body).toBe(204);
    expect(response.body).toBe('');
    expect(response.headers['x-ratelimit-limit']).toBeDefined();
    expectProblem(await login(user.email, password), 401, 'INVALID_CREDENTIALS');
    expect((await login(user.email, NEW_PASSWORD)).statusCode).toBe(200);
  });

  it('works once: a second use is a 400 on token', async () => {
    const { user } = await signUpAndLogin(t);
    const token = await resetTokenFor(user.email);
    expect((await reset(token)).statusCode).toBe(204);
    const again = await reset(token, 'yet another passphrase');
    const problem = expectInvalid(again, 'body', ['/token']);
    expect(problem.detail).toBe('This password reset link is not valid. Ask for a new one.');
    expect((await login(user.email, 'yet another passphrase')).statusCode).toBe(401);
  });

  it('refuses an expired token', async () => {
    const { user, password } = await signUpAndLogin(t);
    const token = await resetTokenFor(user.email);
    await t.db.sql(sql`
      update email_tokens set expires_at = now() - interval '1 second'
      where user_id = ${user.id} and purpose = 'password_reset'`);
    expectInvalid(await reset(token), 'body', ['/token']);
    expect((await login(user.email, password)).statusCode).toBe(200);
  });

  it('refuses a verification token, and an unknown one', async () => {
    const { user, password } = await signUpAndLogin(t);
    const verification = await latestToken(t, user.email, 'email_verification');
    expectInvalid(await reset(verification), 'body', ['/token']);
    expectInvalid(await reset('A'.repeat(43)), 'body', ['/token']);
    expectInvalid(await reset('too-short'), 'body', ['/token']);
    expect((await login(user.email, password)).statusCode).toBe(200);
    // The verification token is still good for what it is for.
    const verify = await t.inject({
      method: 'POST',
      url: '/api/auth/email/verify',
      payload: { token: verification },
    });
    expect(verify.statusCode).toBe(204);
  });

  it('refuses a new password over 72 bytes on newPassword, and leaves the token unused', async () => {
    const { user } = await signUpAndLogin(t);
    const token = await resetTokenFor(user.email);
    // 40 characters, 80 bytes in UTF-8.
    expectInvalid(await reset(token, 'é'.repeat(40)), 'body', ['/newPassword']);
    expectInvalid(await reset(token, 'short'), 'body', ['/newPassword']);
    expect((await reset(token)).statusCode).toBe(204);
  });

  it('makes the other reset links of the account useless', async () => {
    const { user } = await signUpAndLogin(t);
    const older = await resetTokenFor(user.email);
    await ageTokens(t, user.email, 61);
    const newer = await resetTokenFor(user.email);
    expect(newer).not.toBe(older);
    expect((await reset(newer)).statusCode).toBe(204);
    expectInvalid(await reset(older, 'yet another passphrase'), 'body', ['/token']);
  });

  it("ends every session of the account, and no one else's", async () => {
    const { user } = await signUpAndLogin(t);
    const other = await signUpAndLogin(t);
    const sessions = await t.db.sql(sql`
      insert into sessions (user_id, expires_at, revoked_at) values
        (${user.id}, now() + interval '30 days', null),
        (${user.id}, now() + interval '30 days', null),
        (${user.id}, now() + interval '30 days', '2020-01-01T00:00:00Z'),
        (${other.user.id}, now() + interval '30 days', null)
      returning id`);
    const token = await resetTokenFor(user.email);
    expect((await reset(token)).statusCode).toBe(204);

    const rows = await t.db.sql(sql`
      select user_id = ${user.id} as mine, revoked_at is not null as revoked,
             revoked_at = '2020-01-01T00:00:00Z' as revoked_before
      from sessions
      where id in (${sql.join(
        sessions.map((s) => sql`${s.id as string}::uuid`),
        sql`, `,
      )})
      order by mine desc, revoked_before`);
    expect(rows).toEqual([
      { mine: true, revoked: true, revoked_before: false },
      { mine: true, revoked: true, revoked_before: false },
      // The one ended before keeps its time.
      { mine: true, revoked: true, revoked_before: true },
      { mine: false, revoked: false, revoked_before: null },
    ]);
  });

  it('kills every access and refresh token issued before it, on every secured operation', async () => {
    const first = await signUpAndLogin(t);
    const { user, sessionId, auth, refreshToken } = first;
    const second = await login(user.email, first.password);
    expect(second.statusCode, second.body).toBe(200);
    const other = await signUpAndLogin(t);

    expect((await reset(await resetTokenFor(user.email))).statusCode).toBe(204);

    for (const { operationId, request } of securedCalls({ userId: user.id, sessionId }, auth)) {
      expect((await t.inject(request)).statusCode, operationId).toBe(401);
    }
    const secondToken = second.json<{ accessToken: string; refreshToken: string }>();
    const me = (token: string) =>
      t.inject({
        method: 'GET',
        url: '/api/auth/me',
        headers: { authorization: `Bearer ${token}` },
      });
    expectProblem(await me(secondToken.accessToken), 401, 'UNAUTHORIZED');
    for (const token of [refreshToken, secondToken.refreshToken]) {
      const refreshed = await t.inject({
        method: 'POST',
        url: '/api/auth/refresh',
        payload: { refreshToken: token },
      });
      expectProblem(refreshed, 401, 'UNAUTHORIZED');
    }
    // Someone else's session goes on; and the new password starts a new one.
    expect(
      (await t.inject({ method: 'GET', url: '/api/auth/me', headers: other.auth })).statusCode,
    ).toBe(200);
    const fresh = await login(user.email, NEW_PASSWORD);
    expect(fresh.statusCode, fresh.body).toBe(200);
    expect((await me(fresh.json<{ accessToken: string }>().accessToken)).statusCode).toBe(200);
  });

  it("clears the account's failed-login count, and no one else's", async () => {
    const email = `${unique('Failing')}@Example.com`;
    await signUpAndLogin(t, { email });
    const elsewhere = `${unique('other')}@example.com`;
    await t.db.sql(sql`
      insert into login_failures (email_key, failures, window_started_at) values
        (${email.toLowerCase()}, 7, now()), (${elsewhere}, 3, now())`);
    const token = await resetTokenFor(email);
    expect((await reset(token)).statusCode).toBe(204);
    const left = await t.db.sql(sql`
      select email_key from login_failures where email_key in (${email.toLowerCase()}, ${elsewhere})`);
    expect(left).toEqual([{ email_key: elsewhere }]);
  });

  it('looks the token up before any bcrypt work: an unknown, used or expired one costs no hash', async () => {
    // The service on the app's database, with a real hasher that counts its hashes.
    const real = createPasswordHasher({ cost: 4, threads: 1 });
    let hashes = 0;
    const service = createAccountService({
      accounts: createAccountRepository(t.db.database.db),
      passwords: {
        hash: async (password) => {
          hashes += 1;
          return real.hash(password);
        },
      },
      mail: createAccountMail({
        publicUrl: PUBLIC_URL,
        passwordResetTtlSeconds: 1800,
        verificationTtlSeconds: 3600,
      }),
    });
    const refused = async (outcome: Awaited<ReturnType<typeof service.resetPassword>>) => {
      expect(outcome.ok).toBe(false);
      if (!outcome.ok)
        expect(outcome.error).toMatchObject({ code: 'INVALID_INPUT', field: 'token' });
    };
    try {
      const { user } = await signUpAndLogin(t);
      const expiring = await signUpAndLogin(t);
      const token = await resetTokenFor(user.email);
      const expired = await resetTokenFor(expiring.user.email);
      await t.db.sql(sql`
        update email_tokens set expires_at = now() - interval '1 second'
        where user_id = ${expiring.user.id} and purpose = 'password_reset'`);
      const verification = await latestToken(t, user.email, 'email_verification');

      await refused(
        await service.resetPassword({ token: 'A'.repeat(43), newPassword: NEW_PASSWORD }),
      );
      await refused(await service.resetPassword({ token: expired, newPassword: NEW_PASSWORD }));
      await refused(
        await service.resetPassword({ token: verification, newPassword: NEW_PASSWORD }),
      );
      expect(hashes, 'hashes for unknown, expired and other-purpose tokens').toBe(0);

      expect((await service.resetPassword({ token, newPassword: NEW_PASSWORD })).ok).toBe(true);
      expect(hashes, 'one hash for the valid token').toBe(1);
      await refused(await service.resetPassword({ token, newPassword: 'yet another one!' }));
      expect(hashes, 'no hash for a used token').toBe(1);

      // verifyEmail needs no hash at all, valid token or not.
      expect((await service.verifyEmail({ token: 'B'.repeat(43) })).ok).toBe(false);
      expect((await service.verifyEmail({ token: verification })).ok).toBe(true);
      expect(hashes).toBe(1);
    } finally {
      await real.close();
    }
  });

  it('lets exactly one of two concurrent resets with one token succeed', async () => {
    const { user } = await signUpAndLogin(t);
    const token = await resetTokenFor(user.email);
    const [a, b] = await Promise.all([
      reset(token, 'first passphrase!'),
      reset(token, 'second passphrase!'),
    ]);
    expect([a.statusCode, b.statusCode].sort()).toEqual([204, 400]);
    const winner = a.statusCode === 204 ? 'first passphrase!' : 'second passphrase!';
    const loser = a.statusCode === 204 ? 'second passphrase!' : 'first passphrase!';
    expect((await login(user.email, winner)).statusCode).toBe(200);
    expect((await login(user.email, loser)).statusCode).toBe(401);
  });

  it('refuses unknown fields and missing ones', async () => {
    const response = await t.inject({
      method: 'POST',
      url: '/api/auth/password/reset',
      payload: { token: 'A'.repeat(43), newPassword: NEW_PASSWORD, email: 'x@example.com' },
    });
    expectProblem(response, 400, 'VALIDATION_ERROR');
    const missing = await t.inject({
      method: 'POST',
      url: '/api/auth/password/reset',
      payload: { newPassword: NEW_PASSWORD },
    });
    expectProblem(missing, 400, 'VALIDATION_ERROR');
  });
});
