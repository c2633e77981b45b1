import { sql } from 'drizzle-orm';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { components } from '../../generated/api.js';
import { buildApp } from '../../src/app.js';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { loggerOptions } from '../../src/logger.js';
import { TEST_JWT_SECRET, signUpAndLogin, useTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { logCapture } from '../helpers/logs.js';
import { tokenIn } from '../helpers/mail.js';
import { expectProblem, expectValidationError } from '../helpers/problems.js';
import { USER_KEYS, unique } from '../helpers/values.js';

type User = components['schemas']['User'];
type UserPage = components['schemas']['UserPage'];
type PublicUserPage = components['schemas']['PublicUserPage'];
type Headers = Record<string, string>;

const t = useTestApp();

const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

function adminList(headers: Headers = {}, query = '') {
  return t.inject({ method: 'GET', url: `/api/admin/users${query}`, headers });
}

function adminGet(id: string, headers: Headers = {}) {
  return t.inject({ method: 'GET', url: `/api/admin/users/${id}`, headers });
}

function patchUser(id: string, payload: unknown, headers: Headers = {}) {
  return t.inject({
    method: 'PATCH',
    url: `/api/users/${id}`,
    headers,
    payload: payload as InjectOptions['payload'],
  });
}

function deleteUser(id: string, headers: Headers = {}) {
  return t.inject({ method: 'DELETE', url: `/api/users/${id}`, headers });
}

function me(headers: Headers) {
  return t.inject({ method: 'GET', url: '/api/auth/me', headers });
}

/** The account as stored, read past the API. */
async function row(id: string) {
  const [found] = await t.db.sql(
    sql`select role, is_active as "isActive", password_hash as "passwordHash" from users where id = ${id}`,
  );
  return found as { role: string; isActive: boolean; passwordHash: string } | undefined;
}

/** A new account made an admin behind the API's back (the first admin has to come from somewhere). */
async function signUpAdmin() {
  const account = await signUpAndLogin(t);
  await t.db.sql(sql`update users set role = 'admin' where id = ${account.user.id}`);
  return account;
}

/** Makes `ids` the only active admins: every other admin becomes a user. */
async function onlyAdmins(...ids: string[]) {
  await t.db.sql(sql`update users set role = 'user' where role = 'admin'`);
  for (const id of ids) {
    await t.db.sql(sql`update users set role = 'admin', is_active = true where id = ${id}`);
  }
}

async function activeAdminCount(): Promise<number> {
  const [found] = await t.db.sql(
    sql`select count(*)::int as n from users where role = 'admin' and is_active`,
  );
  return Number(found?.n);
}

describe('adminListUsers: GET /api/admin/users', () => {
  it('lists full accounts, email addresses, roles and isActive included, to an admin', async () => {
    const admin = await signUpAdmin();
    const other = await signUpAndLogin(t, { firstName: 'Listed' });
    const response = await adminList(admin.auth, '?limit=100');
    expect(response.statusCode, response.body).toBe(200);
    const page = response.json<UserPage>();
    for (const item of page.items) expect(Object.keys(item).sort()).toEqual(USER_KEYS);
    expect(page.items.find((item) => item.id === other.user.id)).toMatchObject({
      email: other.user.email,
      username: other.user.username,
      firstName: 'Listed',
      role: 'user',
      isActive: true,
    });
    expect(page.items.find((item) => item.id === admin.user.id)).toMatchObject({
      role: 'admin',
    });
  });

  it('walks every account once, oldest first, like listUsers, with the same cursors', async () => {
    const admin = await signUpAdmin();
    for (let i = 0; i < 7; i += 1) await signUpAndLogin(t);
    const seen: User[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `?limit=3${cursor ? `&cursor=${cursor}` : ''}`;
      const response = await adminList(admin.auth, query);
      expect(response.statusCode, response.body).toBe(200);
      const page: UserPage = response.json<UserPage>();
      expect(page.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.items);
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor !== null && pages < 100);

    const ids = seen.map((user) => user.id);
    expect(new Set(ids).size).toBe(ids.length);
    const all = await t.db.sql(sql`select id from users order by created_at, id`);
    expect(ids).toEqual(all.map((found) => found.id));

    // A cursor of the public list is one of the admin list, and the other way round.
    const publicPage = (
      await t.inject({ method: 'GET', url: '/api/users?limit=3' })
    ).json<PublicUserPage>();
    const adminPage = (await adminList(admin.auth, '?limit=3')).json<UserPage>();
    expect(adminPage.nextCursor).toBe(publicPage.nextCursor);
  });

  it('answers 400 to a cursor the server never gave out, and to a limit out of range', async () => {
    const admin = await signUpAdmin();
    expectValidationError(await adminList(admin.auth, '?cursor=bm9wZQ'), 'query', '/cursor');
    expectValidationError(await adminList(admin.auth, '?limit=0'), 'query', '/limit');
    expectValidationError(await adminList(admin.auth, '?limit=101'), 'query', '/limit');
  });

  it('answers 403 to a user who is not an admin, and 401 without a valid token', async () => {
    const user = await signUpAndLogin(t);
    const problem = expectProblem(await adminList(user.auth), 403, 'FORBIDDEN');
    expect(problem.detail).toMatch(/admin/);
    expectProblem(await adminList(), 401, 'UNAUTHORIZED');
    expectProblem(await adminList({ authorization: 'Bearer x.y.z' }), 401, 'UNAUTHORIZED');
  });

  it('leaves the public listing without email addresses, whoever asks', async () => {
    const admin = await signUpAdmin();
    for (const headers of [{}, admin.auth]) {
      const response = await t.inject({ method: 'GET', url: '/api/users?limit=100', headers });
      expect(response.statusCode).toBe(200);
      expect(response.body).not.toContain('@example.com');
      for (const item of response.json<PublicUserPage>().items) {
        expect(item).not.toHaveProperty('email');
        expect(item).not.toHaveProperty('role');
      }
    }
  });
});

describe('adminGetUser: GET /api/admin/users/{id}', () => {
  it('answers the full account to an admin', async () => {
    const admin = await signUpAdmin();
    const other = await signUpAndLogin(t, { lastName: 'Seen' });
    const response = await adminGet(other.user.id, admin.auth);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<User>()).toEqual((await me(other.auth)).json<User>());
  });

  it('finds the account by the upper-case form of its id', async () => {
    const admin = await signUpAdmin();
    const other = await signUpAndLogin(t);
    const response = await adminGet(other.user.id.toUpperCase(), admin.auth);
    expect(response.statusCode).toBe(200);
    expect(response.json<User>().id).toBe(other.user.id);
  });

  it('answers 404 for an unknown id, 400 for a malformed one and 414 for an over-long one', async () => {
    const admin = await signUpAdmin();
    expectProblem(await adminGet(UNKNOWN_ID, admin.auth), 404, 'NOT_FOUND');
    expectValidationError(await adminGet('not-a-uuid', admin.auth), 'path', '/id');
    expectProblem(await adminGet('a'.repeat(256), admin.auth), 414, 'URI_TOO_LONG');
  });

  it('answers 403 to a user who is not an admin, even about their own account', async () => {
    const a = await signUpAndLogin(t);
    const b = await signUpAndLogin(t);
    expectProblem(await adminGet(b.user.id, a.auth), 403, 'FORBIDDEN');
    expectProblem(await adminGet(a.user.id, a.auth), 403, 'FORBIDDEN');
    expectProblem(await adminGet(b.user.id), 401, 'UNAUTHORIZED');
  });
});

describe('what an admin may do to other accounts', () => {
  it("changes another user's account, role and isActive included, and the changes stick", async () => {
    const admin = await signUpAdmin();
    const other = await signUpAndLogin(t);
    const username = unique('renamed');
    const response = await patchUser(
      other.user.id,
      { username, firstName: 'Changed', role: 'admin', isActive: true },
      admin.auth,
    );
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<User>()).toMatchObject({ username, firstName: 'Changed', role: 'admin' });
    expect((await adminGet(other.user.id, admin.auth)).json<User>()).toMatchObject({
      username,
      firstName: 'Changed',
      role: 'admin',
      isActive: true,
    });
  });

  it("answers 409 on /username to another account's taken username", async () => {
    const admin = await signUpAdmin();
    const a = await signUpAndLogin(t);
    const b = await signUpAndLogin(t);
    const problem = expectProblem(
      await patchUser(a.user.id, { username: b.user.username.toUpperCase() }, admin.auth),
      409,
      'CONFLICT',
    );
    expect(problem.errors).toEqual([
      { location: 'body', pointer: '/username', message: 'is already taken' },
    ]);
  });

  it("deletes another user's account", async () => {
    const admin = await signUpAdmin();
    const other = await signUpAndLogin(t);
    const response = await deleteUser(other.user.id, admin.auth);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<User>().id).toBe(other.user.id);
    expectProblem(await adminGet(other.user.id, admin.auth), 404, 'NOT_FOUND');
    expectProblem(await me(other.auth), 401, 'UNAUTHORIZED');
  });

  it('answers 404 to a change or a delete of an account that does not exist', async () => {
    const admin = await signUpAdmin();
    expectProblem(await patchUser(UNKNOWN_ID, { firstName: 'X' }, admin.auth), 404, 'NOT_FOUND');
    expectProblem(await patchUser(UNKNOWN_ID, { role: 'user' }, admin.auth), 404, 'NOT_FOUND');
    expectProblem(await deleteUser(UNKNOWN_ID, admin.auth), 404, 'NOT_FOUND');
  });
});

describe('what a user who is not an admin may not do', () => {
  it("cannot read, change or delete another user's account (403), which stays as it was", async () => {
    const a = await signUpAndLogin(t);
    const b = await signUpAndLogin(t);
    const before = (await me(b.auth)).json<User>();
    expectProblem(await adminGet(b.user.id, a.auth), 403, 'FORBIDDEN');
    expectProblem(await patchUser(b.user.id, { firstName: 'X' }, a.auth), 403, 'FORBIDDEN');
    expectProblem(await patchUser(b.user.id, { isActive: false }, a.auth), 403, 'FORBIDDEN');
    expectProblem(await deleteUser(b.user.id, a.auth), 403, 'FORBIDDEN');
    expect((await me(b.auth)).json<User>()).toEqual(before);
  });

  it.each([
    ['role: admin', { role: 'admin' }],
    ['role: user', { role: 'user' }],
    ['isActive: true', { isActive: true }],
    ['isActive: false', { isActive: false }],
    ['a name and role', { firstName: 'Sneaky', role: 'admin' }],
  ])('cannot send %s, even for their own account (403), which stays as it was', async (_, body) => {
    const user = await signUpAndLogin(t);
    const before = (await me(user.auth)).json<User>();
    const problem = expectProblem(await patchUser(user.user.id, body, user.auth), 403, 'FORBIDDEN');
    expect(problem.detail).toMatch(/Only an admin can change a role or enable or disable/);
    expect((await me(user.auth)).json<User>()).toEqual(before);
    expect((await row(user.user.id))?.role).toBe('user');
  });
});

describe('the role is read on every request', () => {
  it('gives a promoted user admin rights from their next request, with the token they have', async () => {
    const admin = await signUpAdmin();
    const user = await signUpAndLogin(t);
    expectProblem(await adminList(user.auth), 403, 'FORBIDDEN');
    const promoted = await patchUser(user.user.id, { role: 'admin' }, admin.auth);
    expect(promoted.statusCode, promoted.body).toBe(200);
    expect((await adminList(user.auth)).statusCode).toBe(200);
    expect((await me(user.auth)).json<User>().role).toBe('admin');
  });

  it('takes admin rights from a demoted admin at once', async () => {
    const admin = await signUpAdmin();
    const other = await signUpAdmin();
    const target = await signUpAndLogin(t);
    expect((await adminGet(target.user.id, other.auth)).statusCode).toBe(200);
    expect((await patchUser(other.user.id, { role: 'user' }, admin.auth)).statusCode).toBe(200);
    expectProblem(await adminGet(target.user.id, other.auth), 403, 'FORBIDDEN');
    expectProblem(
      await patchUser(target.user.id, { firstName: 'X' }, other.auth),
      403,
      'FORBIDDEN',
    );
    expectProblem(await deleteUser(target.user.id, other.auth), 403, 'FORBIDDEN');
  });
});

describe('a disabled account', () => {
  it('gets 401 with its token everywhere from the next request, and 403 at login', async () => {
    const admin = await signUpAdmin();
    const user = await signUpAdmin();
    const disabled = await patchUser(user.user.id, { isActive: false }, admin.auth);
    expect(disabled.statusCode, disabled.body).toBe(200);
    expect(disabled.json<User>().isActive).toBe(false);

    expectProblem(await me(user.auth), 401, 'UNAUTHORIZED');
    expectProblem(await adminList(user.auth), 401, 'UNAUTHORIZED');
    expectProblem(await adminGet(admin.user.id, user.auth), 401, 'UNAUTHORIZED');
    expectProblem(
      await patchUser(user.user.id, { firstName: 'X' }, user.auth),
      401,
      'UNAUTHORIZED',
    );
    expectProblem(await deleteUser(user.user.id, user.auth), 401, 'UNAUTHORIZED');
    const login = await t.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: user.user.email, password: user.password },
    });
    expectProblem(login, 403, 'ACCOUNT_DISABLED');
    expect(await row(user.user.id)).toMatchObject({ isActive: false });
  });

  it('keeps its old tokens dead once an admin enables it again: disabling ended its sessions', async () => {
    const admin = await signUpAdmin();
    const user = await signUpAndLogin(t);
    expect((await patchUser(user.user.id, { isActive: false }, admin.auth)).statusCode).toBe(200);
    expect((await patchUser(user.user.id, { isActive: true }, admin.auth)).statusCode).toBe(200);
    const problem = expectProblem(await me(user.auth), 401, 'UNAUTHORIZED');
    expect(problem.detail).toMatch(/session/i);
    const refresh = await t.inject({
      method: 'POST',
      url: '/api/auth/refresh',
      payload: { refreshToken: user.refreshToken },
    });
    expectProblem(refresh, 401, 'UNAUTHORIZED');
  });

  it('logs in again once an admin enables it', async () => {
    const admin = await signUpAdmin();
    const user = await signUpAndLogin(t);
    expect((await patchUser(user.user.id, { isActive: false }, admin.auth)).statusCode).toBe(200);
    expect((await patchUser(user.user.id, { isActive: true }, admin.auth)).statusCode).toBe(200);
    const login = await t.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: user.user.email, password: user.password },
    });
    expect(login.statusCode, login.body).toBe(200);
  });
});

describe('the last active admin', () => {
  it('cannot demote themself (409 on /role), and stays an admin', async () => {
    const admin = await signUpAdmin();
    await onlyAdmins(admin.user.id);
    const problem = expectProblem(
      await patchUser(admin.user.id, { role: 'user' }, admin.auth),
      409,
      'CONFLICT',
    );
    expect(problem.detail).toMatch(/last active admin/);
    expect(problem.errors).toEqual([
      { location: 'body', pointer: '/role', message: 'would leave no active admin' },
    ]);
    expect(await row(admin.user.id)).toMatchObject({ role: 'admin', isActive: true });
  });

  it('cannot disable themself (409 on /isActive), even together with other changes', async () => {
    const admin = await signUpAdmin();
    await onlyAdmins(admin.user.id);
    const problem = expectProblem(
      await patchUser(admin.user.id, { isActive: false, firstName: 'Gone' }, admin.auth),
      409,
      'CONFLICT',
    );
    expect(problem.errors).toEqual([
      { location: 'body', pointer: '/isActive', message: 'would leave no active admin' },
    ]);
    expect((await me(admin.auth)).json<User>()).toMatchObject({ isActive: true, firstName: null });
  });

  it('cannot delete themself (409, no field), and the account stays', async () => {
    const admin = await signUpAdmin();
    await onlyAdmins(admin.user.id);
    const problem = expectProblem(await deleteUser(admin.user.id, admin.auth), 409, 'CONFLICT');
    expect(problem.errors).toBeUndefined();
    expect(problem.detail).toMatch(/last active admin/);
    expect((await me(admin.auth)).statusCode).toBe(200);
  });

  it('may still keep their role, change their names, and stay active', async () => {
    const admin = await signUpAdmin();
    await onlyAdmins(admin.user.id);
    const response = await patchUser(
      admin.user.id,
      { role: 'admin', isActive: true, lastName: 'Kept' },
      admin.auth,
    );
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<User>()).toMatchObject({
      role: 'admin',
      isActive: true,
      lastName: 'Kept',
    });
  });

  it('does not count disabled admins: a disabled admin does not free the last active one', async () => {
    const admin = await signUpAdmin();
    const dormant = await signUpAdmin();
    await onlyAdmins(admin.user.id);
    await t.db.sql(
      sql`update users set role = 'admin', is_active = false where id = ${dormant.user.id}`,
    );
    expectProblem(await patchUser(admin.user.id, { role: 'user' }, admin.auth), 409, 'CONFLICT');
  });

  it('can step down, be disabled or be deleted once a second admin exists', async () => {
    for (const [change, check] of [
      [
        (id: string, auth: Headers) => patchUser(id, { role: 'user' }, auth),
        { role: 'user', isActive: true },
      ],
      [
        (id: string, auth: Headers) => patchUser(id, { isActive: false }, auth),
        { role: 'admin', isActive: false },
      ],
      [(id: string, auth: Headers) => deleteUser(id, auth), undefined],
    ] as const) {
      const admin = await signUpAdmin();
      await onlyAdmins(admin.user.id);
      expect((await change(admin.user.id, admin.auth)).statusCode).toBe(409);
      const second = await signUpAndLogin(t);
      const promoted = await patchUser(second.user.id, { role: 'admin' }, admin.auth);
      expect(promoted.statusCode, promoted.body).toBe(200);
      const response = await change(admin.user.id, admin.auth);
      expect(response.statusCode, response.body).toBe(200);
      const stored = await row(admin.user.id);
      if (check) expect(stored).toMatchObject(check);
      else expect(stored).toBeUndefined();
      // And now the second one is the last.
      expect(await activeAdminCount()).toBe(1);
      expect((await change(second.user.id, second.auth)).statusCode).toBe(409);
    }
  });

  it('is the one left when the other admin was disabled, whose token no longer works', async () => {
    const admin = await signUpAdmin();
    const other = await signUpAdmin();
    await onlyAdmins(admin.user.id, other.user.id);
    expect((await patchUser(other.user.id, { isActive: false }, admin.auth)).statusCode).toBe(200);
    expectProblem(
      await patchUser(admin.user.id, { role: 'user' }, other.auth),
      401,
      'UNAUTHORIZED',
    );
    expectProblem(await patchUser(admin.user.id, { role: 'user' }, admin.auth), 409, 'CONFLICT');
  });
});

describe('concurrent changes never leave no active admin', () => {
  type Change = (target: string, auth: Headers) => Promise<{ statusCode: number; body: string }>;
  const demote: Change = (id, auth) => patchUser(id, { role: 'user' }, auth);
  const disable: Change = (id, auth) => patchUser(id, { isActive: false }, auth);
  const remove: Change = (id, auth) => deleteUser(id, auth);

  it.each([
    ['demote each other', demote, demote],
    ['disable each other', disable, disable],
    ['delete each other', remove, remove],
    ['one demotes, the other disables', demote, disable],
  ])('two admins who %s at once: exactly one wins (10 rounds)', async (_, first, second) => {
    for (let round = 0; round < 10; round += 1) {
      const a = await signUpAdmin();
      const b = await signUpAdmin();
      await onlyAdmins(a.user.id, b.user.id);
      const answers = await Promise.all([first(b.user.id, a.auth), second(a.user.id, b.auth)]);
      const [won, lost] = answers.map((answer) => answer.statusCode).sort();
      const bodies = answers.map((answer) => answer.body).join('\n');
      expect(won, bodies).toBe(200);
      // The loser's request met the last admin (409), or started after the winner had
      // finished, when its own account was no longer an admin's (403) or active (401).
      expect([401, 403, 409], bodies).toContain(lost);
      expect(await activeAdminCount()).toBe(1);
    }
  });

  it('two admins who demote themselves at once: one stays (10 rounds)', async () => {
    for (let round = 0; round < 10; round += 1) {
      const a = await signUpAdmin();
      const b = await signUpAdmin();
      await onlyAdmins(a.user.id, b.user.id);
      const answers = await Promise.all([demote(a.user.id, a.auth), demote(b.user.id, b.auth)]);
      expect(answers.map((answer) => answer.statusCode).sort()).toEqual([200, 409]);
      expect(await activeAdminCount()).toBe(1);
    }
  });

  it('three admins demoting each other in a ring at once: at least one stays (10 rounds)', async () => {
    for (let round = 0; round < 10; round += 1) {
      const admins = [await signUpAdmin(), await signUpAdmin(), await signUpAdmin()];
      await onlyAdmins(...admins.map((admin) => admin.user.id));
      const answers = await Promise.all(
        admins.map((admin, i) => demote(admins[(i + 1) % 3]!.user.id, admin.auth)),
      );
      const codes = answers.map((answer) => answer.statusCode);
      // A demoted admin's own request may be read as a user's (403) when it starts late.
      for (const code of codes) expect([200, 403, 409]).toContain(code);
      expect(await activeAdminCount()).toBeGreaterThanOrEqual(1);
      expect(codes.filter((code) => code === 200).length).toBeLessThanOrEqual(2);
    }
  });
});

describe('ADMIN_EMAIL and ADMIN_PASSWORD: the first admin', () => {
  let db: TestDatabase;
  const { lines, stream } = logCapture();

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  /** Builds and readies an app on this block's database, as a server start does. */
  async function start(env: Record<string, string> = {}): Promise<FastifyInstance> {
    const config = loadConfig({
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      JWT_SECRET: TEST_JWT_SECRET,
      DATABASE_URL: db.url,
      ...env,
    });
    const app = await buildApp(config, {
      logger: { ...(loggerOptions({ env: 'production', logLevel: 'info' }) as object), stream },
    });
    try {
      await app.ready();
    } catch (error) {
      await app.close();
      throw error;
    }
    return app;
  }

  async function stored(email: string) {
    const rows = await db.sql(
      sql`select id, username, role, is_active as "isActive", password_hash as "passwordHash",
                 email_verified as "emailVerified", updated_at as "updatedAt"
          from users where lower(email) = lower(${email})`,
    );
    return rows as Array<{
      id: string;
      username: string;
      role: string;
      isActive: boolean;
      passwordHash: string;
      emailVerified: boolean;
      updatedAt: Date;
    }>;
  }

  /** Signs up through the API of a plain app; verifies the address too when asked to. */
  async function signUpOn(
    app: FastifyInstance,
    email: string,
    options: { verify: boolean; password?: string },
  ) {
    const username = unique('keep');
    const password = options.password ?? 'the original password';
    const signedUp = await app.inject({
      method: 'POST',
      url: '/api/users',
      payload: { email, username, password },
    });
    expect(signedUp.statusCode, signedUp.body).toBe(201);
    if (options.verify) {
      const [mail] = await db.sql(
        sql`select text_body from email_outbox where lower(recipient) = lower(${email})
            and kind = 'email_verification' order by id desc limit 1`,
      );
      const token = tokenIn(String(mail?.text_body), 'verify-email');
      const verified = await app.inject({
        method: 'POST',
        url: '/api/auth/email/verify',
        payload: { token },
      });
      expect(verified.statusCode, verified.body).toBe(204);
    }
    return { username, password };
  }

  async function loginOn(app: FastifyInstance, email: string, password: string) {
    return app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password } });
  }

  it('makes no admin when ADMIN_EMAIL is unset', async () => {
    const app = await start();
    await app.close();
    const [found] = await db.sql(sql`select count(*)::int as n from users where role = 'admin'`);
    expect(Number(found?.n)).toBe(0);
  });

  it('creates the admin once; a second start changes nothing', async () => {
    const email = `${unique('boss')}@example.com`;
    const password = 'the admin password 123';
    const env = { ADMIN_EMAIL: email, ADMIN_PASSWORD: password };
    lines.length = 0;

    const first = await start(env);
    const [created] = await stored(email);
    // Not verified (nobody has proved to own the address): being its creator is enough.
    expect(created).toMatchObject({ role: 'admin', isActive: true, emailVerified: false });
    expect(created?.username).toBe(email.slice(0, email.indexOf('@')));
    const login = await loginOn(first, email, password);
    expect(login.statusCode, login.body).toBe(200);
    const token = { authorization: `Bearer ${login.json<{ accessToken: string }>().accessToken}` };
    const listed = await first.inject({ method: 'GET', url: '/api/admin/users', headers: token });
    expect(listed.statusCode).toBe(200);
    await first.close();
    const said = lines.filter((line) => String(line.msg).startsWith('ADMIN_EMAIL'));
    expect(said).toEqual([
      expect.objectContaining({ level: 30, msg: 'ADMIN_EMAIL: admin account created', email }),
    ]);

    lines.length = 0;
    const second = await start(env);
    await second.close();
    expect(await stored(email)).toEqual([created]);
    expect(lines.filter((line) => String(line.msg).startsWith('ADMIN_EMAIL'))).toEqual([
      expect.objectContaining({ msg: 'ADMIN_EMAIL: the account is an admin already' }),
    ]);
    expect(JSON.stringify(lines)).not.toContain(password);
  });

  it('promotes an existing account whose address is verified, in any letter case, keeping its password', async () => {
    const email = `${unique('promote')}@example.com`;
    const plain = await start();
    await signUpOn(plain, email, { verify: true });
    await plain.close();
    const [before] = await stored(email);
    expect(before).toMatchObject({ role: 'user', emailVerified: true });

    lines.length = 0;
    const env = { ADMIN_EMAIL: email.toUpperCase(), ADMIN_PASSWORD: 'a different password' };
    const app = await start(env);
    const [after] = await stored(email);
    expect(after).toMatchObject({
      id: before?.id,
      username: before?.username,
      role: 'admin',
      passwordHash: before?.passwordHash,
    });
    expect((await loginOn(app, email, 'the original password')).statusCode).toBe(200);
    expectProblem(await loginOn(app, email, 'a different password'), 401, 'INVALID_CREDENTIALS');
    await app.close();
    expect(lines.filter((line) => String(line.msg).startsWith('ADMIN_EMAIL'))).toEqual([
      expect.objectContaining({ level: 30, msg: expect.stringMatching(/promoted to admin/) }),
    ]);
    expect(JSON.stringify(lines)).not.toContain('a different password');

    // Idempotent: a second start leaves the promoted account as it is.
    const again = await start(env);
    await again.close();
    expect(await stored(email)).toEqual([after]);
  });

  it('refuses to start when an account it did not create has the address unverified, saying what to do', async () => {
    const email = `${unique('squatter')}@example.com`;
    const plain = await start();
    // Anyone can sign up with any address: this one never proved to own it.
    const { username } = await signUpOn(plain, email, { verify: false });
    await plain.close();
    const [before] = await stored(email);

    const env = { ADMIN_EMAIL: email, ADMIN_PASSWORD: 'the admin password 123' };
    const refusal = await start(env).then(
      () => {
        throw new Error('the server started');
      },
      (error: unknown) => error as Error,
    );
    expect(refusal).toBeInstanceOf(ConfigError);
    // It names the account, says why, and gives the ways out.
    expect(refusal.message).toContain(`ADMIN_EMAIL: an account with the address ${email}`);
    expect(refusal.message).toContain(`username "${username}"`);
    expect(refusal.message).toContain(before!.id);
    expect(refusal.message).toMatch(/not verified/);
    expect(refusal.message).toMatch(/Verify the address/);
    expect(refusal.message).toMatch(/delete that account/);
    expect(refusal.message).toMatch(/set ADMIN_EMAIL to another address/);
    expect(refusal.message).not.toContain(env.ADMIN_PASSWORD);
    // Nothing changed: still a user, same password.
    expect(await stored(email)).toEqual([before]);

    // Once the address is verified, the same settings start and promote it.
    await db.sql(sql`update users set email_verified = true where id = ${before!.id}`);
    const app = await start(env);
    await app.close();
    expect((await stored(email))[0]).toMatchObject({ id: before!.id, role: 'admin' });
  });

  it('makes a username from the email address that is valid and not taken', async () => {
    const taken = unique('taken');
    const plain = await start();
    const signedUp = await plain.inject({
      method: 'POST',
      url: '/api/users',
      payload: { email: `${unique('x')}@example.com`, username: taken, password: 'long enough pw' },
    });
    expect(signedUp.statusCode).toBe(201);
    await plain.close();

    const email = `${taken}@example.com`;
    const app = await start({ ADMIN_EMAIL: email, ADMIN_PASSWORD: 'long enough pw' });
    await app.close();
    expect((await stored(email))[0]?.username).toBe(`${taken}2`);

    // Too short, and with a character a username cannot have.
    const short = await start({ ADMIN_EMAIL: 'j+@example.com', ADMIN_PASSWORD: 'long enough pw' });
    await short.close();
    expect((await stored('j+@example.com'))[0]?.username).toBe('j_admin');
  });

  it('takes ADMIN_USERNAME, and refuses to start when another account has it', async () => {
    const username = unique('chief');
    const email = `${unique('c')}@example.com`;
    const env = { ADMIN_EMAIL: email, ADMIN_PASSWORD: 'long enough pw', ADMIN_USERNAME: username };
    const app = await start(env);
    await app.close();
    expect((await stored(email))[0]).toMatchObject({ username, role: 'admin' });

    const other = `${unique('d')}@example.com`;
    await expect(start({ ...env, ADMIN_EMAIL: other })).rejects.toThrow(
      /ADMIN_USERNAME .* is taken/,
    );
    expect(await stored(other)).toEqual([]);
  });
});
