import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import type { InjectOptions } from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import type { components } from '../../generated/api.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { loadSpec } from '../../src/spec.js';
import { TEST_JWT_SECRET, signUpAndLogin, useTestApp } from '../helpers/app.js';
import { expectProblem, expectValidationError } from '../helpers/problems.js';
import { USER_KEYS, unique } from '../helpers/values.js';

type User = components['schemas']['User'];
type PublicUser = components['schemas']['PublicUser'];
type PublicUserPage = components['schemas']['PublicUserPage'];

const t = useTestApp();

const PUBLIC_USER_KEYS = ['createdAt', 'firstName', 'id', 'lastName', 'username'];
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const isoMillis = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';
const PASSWORD = 'correct horse battery staple';

function newUserBody(overrides: Record<string, unknown> = {}) {
  const name = unique();
  return { email: `${name}@example.com`, username: name, password: PASSWORD, ...overrides };
}

function createUser(payload: unknown) {
  return t.inject({
    method: 'POST',
    url: '/api/users',
    payload: payload as InjectOptions['payload'],
  });
}

function login(email: string, password: string) {
  return t.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password } });
}

function getUser(id: string) {
  return t.inject({ method: 'GET', url: `/api/users/${id}` });
}

function patchUser(id: string, payload: unknown, headers: Record<string, string> = {}) {
  return t.inject({
    method: 'PATCH',
    url: `/api/users/${id}`,
    headers,
    payload: payload as InjectOptions['payload'],
  });
}

function deleteUser(id: string, headers: Record<string, string> = {}) {
  return t.inject({ method: 'DELETE', url: `/api/users/${id}`, headers });
}

function listUsers(query = '') {
  return t.inject({ method: 'GET', url: `/api/users${query}` });
}

function me(headers: Record<string, string>) {
  return t.inject({ method: 'GET', url: '/api/auth/me', headers });
}

function toCursor(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

/** Every id in the database, in the order listUsers must give them. */
async function idsInListOrder(): Promise<string[]> {
  const rows = await t.db.sql(sql`select id from users order by created_at, id`);
  return rows.map((row) => String(row.id));
}

/** Follows nextCursor from the first page to the last. */
async function walkAllPages(limit: number) {
  const pages: PublicUserPage[] = [];
  let cursor: string | null = null;
  do {
    const query: string = `?limit=${limit}${cursor === null ? '' : `&cursor=${cursor}`}`;
    const response = await listUsers(query);
    expect(response.statusCode, response.body).toBe(200);
    const page = response.json<PublicUserPage>();
    pages.push(page);
    cursor = page.nextCursor;
    expect(pages.length, 'pagination does not end').toBeLessThan(1000);
  } while (cursor !== null);
  return pages;
}

describe('createUser: POST /api/users', () => {
  it('creates the account and answers 201 with the full account', async () => {
    const body = newUserBody({ firstName: 'Ada', lastName: 'Lovelace' });
    const before = Date.now();
    const response = await createUser(body);
    expect(response.statusCode, response.body).toBe(201);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    const user = response.json<User>();
    expect(Object.keys(user).sort()).toEqual(USER_KEYS);
    expect(user).toMatchObject({
      email: body.email,
      username: body.username,
      firstName: 'Ada',
      lastName: 'Lovelace',
      isActive: true,
      emailVerified: false,
      role: 'user',
    });
    expect(user.id).toMatch(uuidPattern);
    expect(user.createdAt).toMatch(isoMillis);
    expect(user.updatedAt).toBe(user.createdAt);
    expect(Date.parse(user.createdAt)).toBeGreaterThanOrEqual(before - 5000);
    expect(Date.parse(user.createdAt)).toBeLessThanOrEqual(Date.now() + 5000);
  });

  it('sets Location to /api/users/{id}, where GET answers the public profile', async () => {
    const response = await createUser(newUserBody({ firstName: 'Grace' }));
    expect(response.statusCode, response.body).toBe(201);
    const user = response.json<User>();
    expect(response.headers.location).toBe(`/api/users/${user.id}`);

    const profile = await t.inject({ method: 'GET', url: String(response.headers.location) });
    expect(profile.statusCode, profile.body).toBe(200);
    expect(profile.json()).toEqual({
      id: user.id,
      username: user.username,
      firstName: 'Grace',
      lastName: null,
      createdAt: user.createdAt,
    });
  });

  it('keeps the email address in the case it was sent', async () => {
    const name = unique('Mixed');
    const email = `${name}.Case@Example.COM`;
    const response = await createUser(newUserBody({ email }));
    expect(response.statusCode, response.body).toBe(201);
    expect(response.json<User>().email).toBe(email);
  });

  it('answers null names when none are sent', async () => {
    const response = await createUser(newUserBody());
    expect(response.statusCode, response.body).toBe(201);
    expect(response.json<User>()).toMatchObject({ firstName: null, lastName: null });
  });

  it('stores names exactly as sent: emoji, right-to-left marks, quotes', async () => {
    const firstName = '🦄 Ada \u200f"O\'Brien" ‏עברית 𝔘𝔫𝔦';
    const lastName = 'e\u0301 (combining) \\ back\\slash';
    const response = await createUser(newUserBody({ firstName, lastName }));
    expect(response.statusCode, response.body).toBe(201);
    const user = response.json<User>();
    expect(user).toMatchObject({ firstName, lastName });
    const profile = await getUser(user.id);
    expect(profile.json<PublicUser>()).toMatchObject({ firstName, lastName });
  });

  it('counts name length in characters: 100 emoji are accepted, 101 are refused', async () => {
    const ok = await createUser(newUserBody({ firstName: '😀'.repeat(100) }));
    expect(ok.statusCode, ok.body).toBe(201);
    expect(ok.json<User>().firstName).toBe('😀'.repeat(100));
    expectValidationError(
      await createUser(newUserBody({ firstName: '😀'.repeat(101) })),
      'body',
      '/firstName',
    );
  });

  it('refuses an empty name', async () => {
    expectValidationError(await createUser(newUserBody({ lastName: '' })), 'body', '/lastName');
  });

  it('accepts a password of exactly 72 bytes, ASCII or multi-byte, and logs in', async () => {
    for (const password of ['p'.repeat(72), '€'.repeat(24)]) {
      const body = newUserBody({ password });
      const response = await createUser(body);
      expect(response.statusCode, response.body).toBe(201);
      const loggedIn = await login(body.email, password);
      expect(loggedIn.statusCode, loggedIn.body).toBe(200);
    }
  });

  it('refuses a password over 72 bytes in UTF-8 that has at most 72 characters', async () => {
    const body = newUserBody({ password: '€'.repeat(30) });
    const problem = expectValidationError(await createUser(body), 'body', '/password');
    expect(problem.errors).toHaveLength(1);
    // Nothing was created: the email address is still free.
    expect((await createUser({ ...body, password: PASSWORD })).statusCode).toBe(201);
  });

  it('refuses a password shorter than 8 characters', async () => {
    expectValidationError(
      await createUser(newUserBody({ password: 'short12' })),
      'body',
      '/password',
    );
  });

  it('refuses a password longer than 72 characters', async () => {
    expectValidationError(
      await createUser(newUserBody({ password: 'p'.repeat(73) })),
      'body',
      '/password',
    );
  });

  it.each(['not-an-email', 'ada@', '@example.com', 'ada @example.com', ''])(
    'refuses the invalid email address %j',
    async (email) => {
      expectValidationError(await createUser(newUserBody({ email })), 'body', '/email');
    },
  );

  it.each(['ab', 'has space', 'a'.repeat(51), 'ümlaut', 'semi;colon'])(
    'refuses the invalid username %j',
    async (username) => {
      expectValidationError(await createUser(newUserBody({ username })), 'body', '/username');
    },
  );

  it('accepts a username of 50 characters from the allowed alphabet', async () => {
    const username = `${unique('x')}_.-`.padEnd(50, 'Z');
    const response = await createUser(newUserBody({ username }));
    expect(response.statusCode, response.body).toBe(201);
    expect(response.json<User>().username).toBe(username);
  });

  it('names every missing required field', async () => {
    const problem = expectProblem(await createUser({}), 400, 'VALIDATION_ERROR');
    const pointers = (problem.errors ?? []).map((item) => item.pointer).sort();
    expect(pointers).toEqual(['/email', '/password', '/username']);
    expect(problem.errors?.every((item) => item.location === 'body')).toBe(true);
  });

  it.each([
    ['isActive', false],
    ['emailVerified', true],
    ['id', UNKNOWN_ID],
  ])('refuses the unknown or read-only property %s', async (key, value) => {
    const body = newUserBody({ [key]: value });
    expectValidationError(await createUser(body), 'body', `/${key}`);
    expect((await login(body.email, PASSWORD)).statusCode).toBe(401);
  });

  it('refuses a client-sent passwordHash, naming it without echoing its value', async () => {
    const hash = '$2b$04$abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz0';
    const body = newUserBody({ passwordHash: hash });
    // Sent without the secret check: the problem rightly names the property it refuses.
    const response = await t.inject({ method: 'POST', url: '/api/users', payload: body });
    const problem = expectValidationError(response, 'body', '/passwordHash');
    expect(problem.errors).toHaveLength(1);
    expect(response.body).not.toContain('$2');
    expect(response.body).not.toContain(PASSWORD);
    expect((await login(body.email, PASSWORD)).statusCode).toBe(401);
  });

  it('does not coerce types: a numeric username is refused', async () => {
    expectValidationError(await createUser(newUserBody({ username: 12345 })), 'body', '/username');
  });

  it('refuses text containing the NUL character', async () => {
    expectValidationError(
      await createUser(newUserBody({ firstName: 'a\u0000b' })),
      'body',
      '/firstName',
    );
  });

  describe('uniqueness regardless of case', () => {
    it('answers 409 on /email to a taken email address differing only in case', async () => {
      const name = unique('case');
      const first = await createUser(newUserBody({ email: `${name}@Example.com` }));
      expect(first.statusCode, first.body).toBe(201);
      const second = newUserBody({ email: `${name.toUpperCase()}@example.COM` });
      const problem = expectProblem(await createUser(second), 409, 'CONFLICT');
      expect(problem.errors?.[0]).toMatchObject({ location: 'body', pointer: '/email' });
      expect((await login(second.email, PASSWORD)).json<{ user: User }>().user.id).toBe(
        first.json<User>().id,
      );
    });

    it('answers 409 on /username to a taken username differing only in case', async () => {
      const username = unique('Name');
      expect((await createUser(newUserBody({ username }))).statusCode).toBe(201);
      const second = newUserBody({ username: username.toLowerCase() });
      const problem = expectProblem(await createUser(second), 409, 'CONFLICT');
      expect(problem.errors?.[0]).toMatchObject({ location: 'body', pointer: '/username' });
      expect((await login(second.email, PASSWORD)).statusCode).toBe(401);
    });
  });

  describe('concurrent sign-ups', () => {
    async function race(count: number, sameField: 'email' | 'username') {
      const shared = unique('race');
      const bodies = Array.from({ length: count }, () =>
        newUserBody(
          sameField === 'email' ? { email: `${shared}@example.com` } : { username: shared },
        ),
      );
      const responses = await Promise.all(bodies.map((body) => createUser(body)));
      const statuses = responses.map((response) => response.statusCode);
      expect(
        statuses.filter((status) => status >= 500),
        statuses.join(),
      ).toEqual([]);
      expect(statuses.filter((status) => status === 201)).toHaveLength(1);
      expect(statuses.filter((status) => status === 409)).toHaveLength(count - 1);
      for (const response of responses.filter((r) => r.statusCode === 409)) {
        const problem = expectProblem(response, 409, 'CONFLICT');
        expect(problem.errors?.[0]?.pointer).toBe(`/${sameField}`);
      }
      const column = sameField === 'email' ? sql`email` : sql`username`;
      const rows = await t.db.sql(
        sql`select count(*)::int as n from users where lower(${column}) = lower(${
          sameField === 'email' ? `${shared}@example.com` : shared
        })`,
      );
      expect(Number(rows[0]?.n)).toBe(1);
    }

    it('lets one of 2 concurrent sign-ups with one email win; the other gets 409', async () => {
      await race(2, 'email');
    });

    it('lets one of 10 concurrent sign-ups with one email win; 9 get 409, none 5xx', async () => {
      await race(10, 'email');
    });

    it('lets exactly one of 10 concurrent sign-ups with one username win; 9 get 409', async () => {
      await race(10, 'username');
    });
  });
});

describe('listUsers: GET /api/users', () => {
  it('lists public profiles only: no email address, no account flags', async () => {
    const { user } = await signUpAndLogin(t, { firstName: 'Listed' });
    const response = await listUsers('?limit=100');
    expect(response.statusCode, response.body).toBe(200);
    const page = response.json<PublicUserPage>();
    expect(page.items.length).toBeGreaterThan(0);
    for (const item of page.items) expect(Object.keys(item).sort()).toEqual(PUBLIC_USER_KEYS);
    expect(response.body).not.toContain('@');
    expect(response.body).not.toMatch(/"(email|isActive|emailVerified)"\s*:/);
    expect(response.body).not.toContain(user.email);
  });

  describe('pagination', () => {
    const created: string[] = [];

    beforeAll(async () => {
      const users: User[] = [];
      for (let i = 0; i < 25; i += 1) {
        const response = await createUser(newUserBody());
        expect(response.statusCode, response.body).toBe(201);
        users.push(response.json<User>());
      }
      // Two sign-ups may share a millisecond: then the id decides, as in the list.
      const key = (user: User) => `${user.createdAt}|${user.id}`;
      users.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
      created.push(...users.map((user) => user.id));
    });

    it('walks every user once, oldest first, with limit=10, until nextCursor is null', async () => {
      const pages = await walkAllPages(10);
      const ids = pages.flatMap((page) => page.items.map((item) => item.id));
      expect(ids.length).toBeGreaterThanOrEqual(25);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toEqual(await idsInListOrder());
      // The 25 users just created come oldest first.
      expect(ids.filter((id) => created.includes(id))).toEqual(created);

      for (const page of pages.slice(0, -1)) {
        expect(page.items).toHaveLength(10);
        expect(page.nextCursor).toEqual(expect.any(String));
      }
      const last = pages.at(-1)!;
      expect(last.nextCursor).toBeNull();
      expect(last.items.length).toBeGreaterThanOrEqual(1);
      expect(last.items.length).toBeLessThanOrEqual(10);

      const times = pages.flatMap((page) => page.items.map((item) => Date.parse(item.createdAt)));
      expect(times).toEqual([...times].sort((a, b) => a - b));
    });

    it('answers 20 users when no limit is given', async () => {
      const total = (await idsInListOrder()).length;
      expect(total).toBeGreaterThan(20);
      const response = await listUsers();
      expect(response.statusCode, response.body).toBe(200);
      const page = response.json<PublicUserPage>();
      expect(page.items).toHaveLength(20);
      expect(page.nextCursor).toEqual(expect.any(String));
      expect(page.items.map((item) => item.id)).toEqual((await idsInListOrder()).slice(0, 20));
    });

    it('accepts the limits 1 and 100', async () => {
      const one = await listUsers('?limit=1');
      expect(one.statusCode, one.body).toBe(200);
      expect(one.json<PublicUserPage>().items).toHaveLength(1);
      const hundred = await listUsers('?limit=100');
      expect(hundred.statusCode, hundred.body).toBe(200);
      const all = await idsInListOrder();
      expect(hundred.json<PublicUserPage>().items).toHaveLength(Math.min(100, all.length));
    });

    it('answers nextCursor null when the last page is exactly full', async () => {
      const total = (await idsInListOrder()).length;
      const response = await listUsers(`?limit=${total}`);
      expect(response.json<PublicUserPage>()).toMatchObject({ nextCursor: null });
      expect(response.json<PublicUserPage>().items).toHaveLength(total);
    });

    it('loses and repeats no user when many share one createdAt', async () => {
      await t.db.sql(
        sql`update users set created_at = '2026-01-15T09:30:00.123Z'
            where id in (${sql.join(
              created.map((id) => sql`${id}::uuid`),
              sql`, `,
            )})`,
      );
      const pages = await walkAllPages(7);
      const ids = pages.flatMap((page) => page.items.map((item) => item.id));
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toEqual(await idsInListOrder());
      expect(ids.filter((id) => created.includes(id))).toEqual([...created].sort());
    });

    it('keeps a cursor valid after the user it points at is deleted', async () => {
      const a = await signUpAndLogin(t);
      const b = await signUpAndLogin(t);
      const c = await signUpAndLogin(t);
      const order = await idsInListOrder();
      const index = order.indexOf(b.user.id);
      expect(order.slice(index - 1, index + 2)).toEqual([a.user.id, b.user.id, c.user.id]);

      const first = (await listUsers(`?limit=${index + 1}`)).json<PublicUserPage>();
      expect(first.items.at(-1)?.id).toBe(b.user.id);
      expect((await deleteUser(b.user.id, b.auth)).statusCode).toBe(200);

      const next = await listUsers(`?limit=1&cursor=${first.nextCursor}`);
      expect(next.statusCode, next.body).toBe(200);
      expect(next.json<PublicUserPage>().items.map((item) => item.id)).toEqual([c.user.id]);
    });

    it('answers an empty last page for a cursor past the end', async () => {
      const cursor = toCursor(`9999-12-31T23:59:59.999Z|${UNKNOWN_ID}`);
      const response = await listUsers(`?cursor=${cursor}`);
      expect(response.statusCode, response.body).toBe(200);
      expect(response.json()).toEqual({ items: [], nextCursor: null });
    });
  });

  it.each(['0', '101', '-1', 'abc', '1.5', '', '10&limit=20'])(
    'refuses limit=%s with 400 on the query',
    async (limit) => {
      expectValidationError(await listUsers(`?limit=${limit}`), 'query', '/limit');
    },
  );

  it.each([
    ['an empty cursor', ''],
    ['characters outside base64url', 'abc%21def'],
    ['a cursor longer than 200 characters', 'A'.repeat(201)],
    ['random text', 'bm90LWEtY3Vyc29y'],
    ['a non-uuid id', toCursor('2026-01-15T09:30:00.000Z|not-a-uuid')],
    ['a date without time', toCursor(`2026-01-15|${UNKNOWN_ID}`)],
    ['an extra field', toCursor(`2026-01-15T09:30:00.000Z|${UNKNOWN_ID}|x`)],
    ['a time out of range', toCursor(`2026-01-15T25:61:00.000Z|${UNKNOWN_ID}`)],
  ])('refuses a forged cursor (%s) with 400 on the query', async (_name, cursor) => {
    expectValidationError(await listUsers(`?cursor=${cursor}`), 'query', '/cursor');
  });

  it('refuses with 400 a forged cursor naming a day that does not exist (Feb 30)', async () => {
    const cursor = toCursor(`2026-02-30T00:00:00.000Z|${UNKNOWN_ID}`);
    expectValidationError(await listUsers(`?cursor=${cursor}`), 'query', '/cursor');
  });
});

describe('getUser: GET /api/users/{id}', () => {
  it('answers the public profile: no email address, no account flags', async () => {
    const { user } = await signUpAndLogin(t, { firstName: 'Public', lastName: 'Profile' });
    const response = await getUser(user.id);
    expect(response.statusCode, response.body).toBe(200);
    const profile = response.json<PublicUser>();
    expect(Object.keys(profile).sort()).toEqual(PUBLIC_USER_KEYS);
    expect(profile).toMatchObject({
      id: user.id,
      username: user.username,
      firstName: 'Public',
      lastName: 'Profile',
    });
    expect(response.body).not.toContain(user.email);
    expect(response.body).not.toMatch(/"(email|isActive|emailVerified)"\s*:/);
  });

  it('finds a user by the upper-case form of the id', async () => {
    const { user } = await signUpAndLogin(t);
    const response = await getUser(user.id.toUpperCase());
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<PublicUser>().id).toBe(user.id);
  });

  it('answers 404 NOT_FOUND for an unknown id', async () => {
    const problem = expectProblem(await getUser(UNKNOWN_ID), 404, 'NOT_FOUND');
    expect(problem.instance).toBe(`/api/users/${UNKNOWN_ID}`);
  });

  it.each(['not-a-uuid', '123', `${UNKNOWN_ID}0`, 'g0000000-0000-4000-8000-000000000000'])(
    'answers 400 on the path for the malformed id %j',
    async (id) => {
      expectValidationError(await getUser(id), 'path', '/id');
    },
  );

  it('answers 400 on the path for an id in URN form (urn:uuid:…)', async () => {
    const { user } = await signUpAndLogin(t);
    expectValidationError(await getUser(`urn:uuid:${user.id}`), 'path', '/id');
  });

  it('answers 414 for an over-long id', async () => {
    expectProblem(await getUser('a'.repeat(256)), 414, 'URI_TOO_LONG');
  });
});

describe('updateUser: PATCH /api/users/{id}', () => {
  it('changes only the fields sent', async () => {
    const { user, auth } = await signUpAndLogin(t, { firstName: 'Ada', lastName: 'Lovelace' });
    const username = unique('renamed');
    const response = await patchUser(user.id, { username }, auth);
    expect(response.statusCode, response.body).toBe(200);
    const updated = response.json<User>();
    expect(Object.keys(updated).sort()).toEqual(USER_KEYS);
    expect(updated).toMatchObject({
      id: user.id,
      email: user.email,
      username,
      firstName: 'Ada',
      lastName: 'Lovelace',
      isActive: true,
      emailVerified: false,
      role: 'user',
    });
    expect((await me(auth)).json<User>()).toEqual(updated);
    expect((await getUser(user.id)).json<PublicUser>().username).toBe(username);
  });

  it('clears firstName with null and leaves lastName alone', async () => {
    const { user, auth } = await signUpAndLogin(t, { firstName: 'Ada', lastName: 'Lovelace' });
    const response = await patchUser(user.id, { firstName: null }, auth);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<User>()).toMatchObject({ firstName: null, lastName: 'Lovelace' });
    expect((await getUser(user.id)).json<PublicUser>()).toMatchObject({
      firstName: null,
      lastName: 'Lovelace',
    });
  });

  it('sets names and moves updatedAt forward, keeping createdAt', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const before = (await me(auth)).json<User>();
    await sleep(20);
    const response = await patchUser(user.id, { firstName: 'New', lastName: 'Name' }, auth);
    expect(response.statusCode, response.body).toBe(200);
    const updated = response.json<User>();
    expect(updated).toMatchObject({ firstName: 'New', lastName: 'Name' });
    expect(updated.createdAt).toBe(before.createdAt);
    expect(updated.updatedAt).toMatch(isoMillis);
    expect(Date.parse(updated.updatedAt)).toBeGreaterThan(Date.parse(before.updatedAt));
  });

  it('changes the email address: login works with the new one, not the old one', async () => {
    const { user, auth, password } = await signUpAndLogin(t);
    const email = `${unique('moved')}@example.org`;
    const response = await patchUser(user.id, { email }, auth);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<User>().email).toBe(email);

    const withNew = await login(email, password);
    expect(withNew.statusCode, withNew.body).toBe(200);
    expect(withNew.json<{ user: User }>().user.id).toBe(user.id);
    expectProblem(await login(user.email, password), 401, 'INVALID_CREDENTIALS');
  });

  it('lets a user change the case of their own email address and username', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const changes = { email: user.email.toUpperCase(), username: user.username.toUpperCase() };
    const response = await patchUser(user.id, changes, auth);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<User>()).toMatchObject(changes);
  });

  it('accepts its own id in upper case', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const response = await patchUser(user.id.toUpperCase(), { lastName: 'Upper' }, auth);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<User>()).toMatchObject({ id: user.id, lastName: 'Upper' });
  });

  it('refuses an empty body {} (minProperties)', async () => {
    const { user, auth } = await signUpAndLogin(t);
    expectValidationError(await patchUser(user.id, {}, auth), 'body', '');
  });

  it.each([
    ['password', 'another password 123'],
    ['createdAt', '2000-01-01T00:00:00.000Z'],
    ['emailVerified', true],
    ['nickname', 'x'],
  ])('refuses the unknown or read-only field %s and changes nothing', async (key, value) => {
    const { user, auth, password } = await signUpAndLogin(t);
    const before = (await me(auth)).json<User>();
    expectValidationError(await patchUser(user.id, { [key]: value }, auth), 'body', `/${key}`);
    expect((await me(auth)).json<User>()).toEqual(before);
    expect((await login(user.email, password)).statusCode).toBe(200);
  });

  it.each([
    ['email', 'not-an-email'],
    ['email', null],
    ['username', null],
    ['username', 'x'],
    ['firstName', ''],
    ['lastName', 'x'.repeat(101)],
    ['firstName', 42],
  ])('refuses %s = %j', async (key, value) => {
    const { user, auth } = await signUpAndLogin(t);
    expectValidationError(await patchUser(user.id, { [key]: value }, auth), 'body', `/${key}`);
  });

  it("answers 409 on /email to another account's email differing only in case", async () => {
    const other = await signUpAndLogin(t);
    const { user, auth } = await signUpAndLogin(t);
    const response = await patchUser(user.id, { email: other.user.email.toUpperCase() }, auth);
    const problem = expectProblem(response, 409, 'CONFLICT');
    expect(problem.errors?.[0]).toMatchObject({ location: 'body', pointer: '/email' });
    expect((await me(auth)).json<User>().email).toBe(user.email);
  });

  it("answers 409 on /username to another account's username differing in case", async () => {
    const other = await signUpAndLogin(t);
    const { user, auth } = await signUpAndLogin(t);
    const response = await patchUser(
      user.id,
      { username: other.user.username.toUpperCase() },
      auth,
    );
    const problem = expectProblem(response, 409, 'CONFLICT');
    expect(problem.errors?.[0]).toMatchObject({ location: 'body', pointer: '/username' });
    expect((await me(auth)).json<User>().username).toBe(user.username);
  });

  it('answers 401 without a token, and changes nothing', async () => {
    const { user, auth } = await signUpAndLogin(t);
    expectProblem(await patchUser(user.id, { firstName: 'Nobody' }), 401, 'UNAUTHORIZED');
    expect((await me(auth)).json<User>().firstName).toBeNull();
  });

  it('answers 401 to a garbage token, and changes nothing', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const garbage = { authorization: 'Bearer garbage' };
    expectProblem(await patchUser(user.id, { firstName: 'Nobody' }, garbage), 401, 'UNAUTHORIZED');
    expect((await me(auth)).json<User>().firstName).toBeNull();
  });

  it("answers 403 to a change of another user's account, which stays unchanged", async () => {
    const a = await signUpAndLogin(t);
    const b = await signUpAndLogin(t, { firstName: 'Bea' });
    const before = (await me(b.auth)).json<User>();
    const response = await patchUser(
      b.user.id,
      { firstName: 'Hacked', email: `${unique('hijack')}@example.com` },
      a.auth,
    );
    expectProblem(response, 403, 'FORBIDDEN');
    expect((await me(b.auth)).json<User>()).toEqual(before);
    expect((await login(b.user.email, b.password)).statusCode).toBe(200);
  });

  it('answers 401 when the own account was deleted after the token was issued', async () => {
    const { user, auth } = await signUpAndLogin(t);
    expect((await deleteUser(user.id, auth)).statusCode).toBe(200);
    expectProblem(await patchUser(user.id, { firstName: 'Ghost' }, auth), 401, 'UNAUTHORIZED');
  });

  it('answers 403 to a user sending role or isActive for their own account, changing nothing', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const before = (await me(auth)).json<User>();
    for (const body of [{ role: 'admin' }, { isActive: false }, { lastName: 'X', role: 'user' }]) {
      const problem = expectProblem(await patchUser(user.id, body, auth), 403, 'FORBIDDEN');
      expect(problem.detail).toBe(
        'Only an admin can change a role or enable or disable an account.',
      );
    }
    expect((await me(auth)).json<User>()).toEqual(before);
  });

  it("lets an admin change another user's account, which the user then sees", async () => {
    const admin = await signUpAndLogin(t);
    await t.db.sql(sql`update users set role = 'admin' where id = ${admin.user.id}`);
    const { user, auth } = await signUpAndLogin(t);
    const response = await patchUser(user.id, { firstName: 'Set', role: 'admin' }, admin.auth);
    expect(response.statusCode, response.body).toBe(200);
    expect((await me(auth)).json<User>()).toMatchObject({ firstName: 'Set', role: 'admin' });
  });

  it('refuses a role that does not exist and an isActive that is not a boolean', async () => {
    const { user, auth } = await signUpAndLogin(t);
    expectValidationError(await patchUser(user.id, { role: 'root' }, auth), 'body', '/role');
    expectValidationError(await patchUser(user.id, { isActive: 'no' }, auth), 'body', '/isActive');
  });

  it('marks a new email address unverified, and keeps the same one in other letters verified', async () => {
    const { user, auth } = await signUpAndLogin(t);
    await t.db.sql(sql`update users set email_verified = true where id = ${user.id}`);
    const sameAddress = await patchUser(user.id, { email: user.email.toUpperCase() }, auth);
    expect(sameAddress.json<User>()).toMatchObject({ emailVerified: true });
    const renamed = await patchUser(user.id, { firstName: 'Ada' }, auth);
    expect(renamed.json<User>()).toMatchObject({ emailVerified: true });
    const moved = await patchUser(user.id, { email: `new-${user.email}` }, auth);
    expect(moved.json<User>()).toMatchObject({ email: `new-${user.email}`, emailVerified: false });
  });

  it('answers 400 on the path for a malformed id', async () => {
    const { auth } = await signUpAndLogin(t);
    expectValidationError(await patchUser('not-a-uuid', { firstName: 'X' }, auth), 'path', '/id');
  });

  it('answers 400 on the path for its own id in URN form (urn:uuid:…)', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const response = await patchUser(`urn:uuid:${user.id}`, { firstName: 'X' }, auth);
    expectValidationError(response, 'path', '/id');
  });

  it('answers 414 for an over-long id', async () => {
    const { auth } = await signUpAndLogin(t);
    expectProblem(await patchUser('a'.repeat(256), { firstName: 'X' }, auth), 414, 'URI_TOO_LONG');
  });
});

describe('updateUser as a JSON merge patch (application/merge-patch+json)', () => {
  const MERGE_PATCH = 'application/merge-patch+json';

  function mergePatch(id: string, payload: string | Buffer, headers: Record<string, string>) {
    return t.inject({
      method: 'PATCH',
      url: `/api/users/${id}`,
      headers: { ...headers, 'content-type': MERGE_PATCH },
      payload,
    });
  }

  it('changes the members sent, clears a name sent as null and leaves the rest', async () => {
    const { user, auth } = await signUpAndLogin(t, { firstName: 'Ada', lastName: 'Lovelace' });
    const username = unique('merged');
    const response = await mergePatch(user.id, JSON.stringify({ username, lastName: null }), auth);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<User>()).toMatchObject({
      id: user.id,
      email: user.email,
      username,
      firstName: 'Ada',
      lastName: null,
    });
    expect((await me(auth)).json<User>()).toEqual(response.json<User>());
  });

  it.each([
    ['malformed JSON', '{"firstName":', 'MALFORMED_REQUEST', undefined],
    ['an empty body', '', 'MALFORMED_REQUEST', undefined],
    [
      'invalid UTF-8',
      Buffer.concat([Buffer.from('{"firstName":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
      'MALFORMED_REQUEST',
      undefined,
    ],
    ['a NUL character', '{"firstName":"a\\u0000b"}', 'VALIDATION_ERROR', '/firstName'],
    ['a lone surrogate', '{"firstName":"a\\ud800b"}', 'VALIDATION_ERROR', '/firstName'],
    ['an unknown member', '{"nickname":"x"}', 'VALIDATION_ERROR', '/nickname'],
    ['a read-only member', '{"emailVerified":true}', 'VALIDATION_ERROR', '/emailVerified'],
    ['a number for a name', '{"firstName":42}', 'VALIDATION_ERROR', '/firstName'],
    ['null for the username', '{"username":null}', 'VALIDATION_ERROR', '/username'],
    ['no member at all', '{}', 'VALIDATION_ERROR', ''],
    ['a patch that is not an object', '"Ada"', 'VALIDATION_ERROR', ''],
  ] as const)(
    'answers 400 %s and changes nothing, as for application/json',
    async (_name, payload, code, pointer) => {
      const { user, auth } = await signUpAndLogin(t, { firstName: 'Kept' });
      const before = (await me(auth)).json<User>();
      const response = await mergePatch(user.id, payload, auth);
      if (pointer === undefined) expectProblem(response, 400, code);
      else expectValidationError(response, 'body', pointer);
      expect((await me(auth)).json<User>()).toEqual(before);
    },
  );

  it('answers 415 to a JSON Patch (application/json-patch+json), naming the two types it takes', async () => {
    const { user, auth } = await signUpAndLogin(t, { firstName: 'Kept' });
    const response = await t.inject({
      method: 'PATCH',
      url: `/api/users/${user.id}`,
      headers: { ...auth, 'content-type': 'application/json-patch+json' },
      payload: JSON.stringify([{ op: 'replace', path: '/firstName', value: 'Patched' }]),
    });
    const problem = expectProblem(response, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(problem.detail).toBe(
      'Send the body as application/merge-patch+json or application/json.',
    );
    expect((await me(auth)).json<User>().firstName).toBe('Kept');
  });

  it('is refused (415) by the operations whose body is plain JSON only', async () => {
    const { user, auth, password } = await signUpAndLogin(t);
    const email = `${unique('mp')}@example.com`;
    const signUp = await t.inject({
      method: 'POST',
      url: '/api/users',
      headers: { 'content-type': MERGE_PATCH },
      payload: JSON.stringify({ email, username: unique('mp'), password }),
    });
    expect(expectProblem(signUp, 415, 'UNSUPPORTED_MEDIA_TYPE').detail).toBe(
      'Send the body as application/json.',
    );
    expectProblem(await login(email, password), 401, 'INVALID_CREDENTIALS');

    const logIn = await t.inject({
      method: 'POST',
      url: '/api/auth/login',
      headers: { 'content-type': MERGE_PATCH },
      payload: JSON.stringify({ email: user.email, password }),
    });
    expectProblem(logIn, 415, 'UNSUPPORTED_MEDIA_TYPE');

    const remove = await t.inject({
      method: 'DELETE',
      url: `/api/users/${user.id}`,
      headers: { ...auth, 'content-type': MERGE_PATCH },
      payload: '{}',
    });
    expectProblem(remove, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect((await getUser(user.id)).statusCode).toBe(200);
  });

  it('cannot start from a spec that gives the two media types different schemas', async () => {
    // Fastify would validate each body by its own media type's schema, and a PATCH without
    // a body by none: the server refuses to start rather than let that through.
    const spec = structuredClone(loadSpec());
    const patch = spec.paths['/api/users/{id}']!.patch as {
      requestBody: { content: Record<string, unknown> };
    };
    patch.requestBody.content[MERGE_PATCH] = { schema: { type: 'object' } };
    const config = loadConfig({
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      JWT_SECRET: TEST_JWT_SECRET,
    });
    await expect(buildApp(config, { database: t.db.database, spec })).rejects.toThrow(
      /PATCH \/api\/users\/:id: .*different schemas/,
    );
  });
});

describe('deleteUser: DELETE /api/users/{id}', () => {
  it('answers the deleted account as it was', async () => {
    const { user, auth } = await signUpAndLogin(t, { firstName: 'Gone', lastName: 'Soon' });
    const before = (await me(auth)).json<User>();
    const response = await deleteUser(user.id, auth);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json<User>()).toEqual(before);
    expect(Object.keys(response.json<User>()).sort()).toEqual(USER_KEYS);
  });

  it('removes the account: profile 404, login 401, token 401 (a second delete included)', async () => {
    const { user, auth, password } = await signUpAndLogin(t);
    expect((await deleteUser(user.id, auth)).statusCode).toBe(200);

    expectProblem(await getUser(user.id), 404, 'NOT_FOUND');
    expectProblem(await login(user.email, password), 401, 'INVALID_CREDENTIALS');
    expectProblem(await me(auth), 401, 'UNAUTHORIZED');
    expectProblem(await deleteUser(user.id, auth), 401, 'UNAUTHORIZED');
    const page = (await listUsers('?limit=100')).json<PublicUserPage>();
    expect(page.items.map((item) => item.id)).not.toContain(user.id);
    const rows = await t.db.sql(sql`select count(*)::int as n from users where id = ${user.id}`);
    expect(Number(rows[0]?.n)).toBe(0);
  });

  it('frees the email address and the username for a new account', async () => {
    const { user, auth } = await signUpAndLogin(t);
    expect((await deleteUser(user.id, auth)).statusCode).toBe(200);
    const again = await createUser({
      email: user.email,
      username: user.username,
      password: PASSWORD,
    });
    expect(again.statusCode, again.body).toBe(201);
    expect(again.json<User>().id).not.toBe(user.id);
  });

  it('answers 401 without a token or with a garbage token, and deletes nothing', async () => {
    const { user } = await signUpAndLogin(t);
    expectProblem(await deleteUser(user.id), 401, 'UNAUTHORIZED');
    expectProblem(
      await deleteUser(user.id, { authorization: 'Bearer x.y.z' }),
      401,
      'UNAUTHORIZED',
    );
    expect((await getUser(user.id)).statusCode).toBe(200);
  });

  it("answers 403 to a delete of another user's account, which stays as it was", async () => {
    const a = await signUpAndLogin(t);
    const b = await signUpAndLogin(t);
    const before = (await me(b.auth)).json<User>();
    expectProblem(await deleteUser(b.user.id, a.auth), 403, 'FORBIDDEN');
    expect((await me(b.auth)).json<User>()).toEqual(before);
    expect((await login(b.user.email, b.password)).statusCode).toBe(200);
    // The caller's own account is untouched too.
    expect((await me(a.auth)).statusCode).toBe(200);
  });

  it("lets an admin delete another user's account", async () => {
    const admin = await signUpAndLogin(t);
    await t.db.sql(sql`update users set role = 'admin' where id = ${admin.user.id}`);
    const { user, auth } = await signUpAndLogin(t);
    expect((await deleteUser(user.id, admin.auth)).statusCode).toBe(200);
    expectProblem(await getUser(user.id), 404, 'NOT_FOUND');
    expectProblem(await me(auth), 401, 'UNAUTHORIZED');
  });

  it('answers 400 on the path for a malformed id', async () => {
    const { auth } = await signUpAndLogin(t);
    expectValidationError(await deleteUser('not-a-uuid', auth), 'path', '/id');
  });

  it('answers 400 on the path for its own id as urn:uuid:…, deleting nothing', async () => {
    const { user, auth } = await signUpAndLogin(t);
    expectValidationError(await deleteUser(`urn:uuid:${user.id}`, auth), 'path', '/id');
    expect((await me(auth)).statusCode).toBe(200);
  });

  it('answers 414 for an over-long id', async () => {
    const { auth } = await signUpAndLogin(t);
    expectProblem(await deleteUser('a'.repeat(256), auth), 414, 'URI_TOO_LONG');
  });
});
