import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { loggerOptions } from '../../src/logger.js';
import { TEST_JWT_SECRET } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { logCapture } from '../helpers/logs.js';
import { observeResponses } from '../helpers/observe.js';

/** The logs carry a request id on every line, and never a password, a hash or a token. */

const { lines, stream } = logCapture();

let db: TestDatabase;
let app: FastifyInstance;
let observed: { take(): string[] };
const password = 'a password nobody may log';
const email = 'logged@example.com';

beforeAll(async () => {
  db = await createTestDatabase();
  const config = loadConfig({
    NODE_ENV: 'production',
    PUBLIC_URL: 'https://app.example.test',
    LOG_LEVEL: 'debug',
    JWT_SECRET: TEST_JWT_SECRET,
    BCRYPT_COST: '4',
    DATABASE_URL: db.url,
  });
  app = await buildApp(config, {
    logger: { ...(loggerOptions(config) as object), stream },
  });
  observed = observeResponses(app);
  await app.ready();
});

afterEach(() => {
  expect(observed.take(), 'responses outside the contract').toEqual([]);
});

afterAll(async () => {
  await app.close();
  await db.drop();
});

describe('logs', () => {
  it('hold no password, hash or token, even when a query fails', async () => {
    const created = await app.inject({
      method: 'POST',
      url: '/api/users',
      headers: { 'x-request-id': 'trace-me-1' },
      payload: { email, username: 'logged', password },
    });
    expect(created.statusCode).toBe(201);
    const login = await app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email, password },
    });
    const { accessToken, refreshToken } = login.json<{
      accessToken: string;
      refreshToken: string;
    }>();
    await app.inject({
      method: 'GET',
      url: '/api/auth/me',
      headers: { authorization: `Bearer ${accessToken}` },
    });
    const refreshed = await app.inject({
      method: 'POST',
      url: '/api/auth/refresh',
      payload: { refreshToken },
    });
    expect(refreshed.statusCode).toBe(200);
    const newPassword = 'a new password for the logs';
    const changed = await app.inject({
      method: 'POST',
      url: '/api/auth/password/change',
      headers: { authorization: `Bearer ${accessToken}` },
      payload: { currentPassword: password, newPassword },
    });
    expect(changed.statusCode).toBe(200);
    const secondRefreshToken = refreshed.json<{ refreshToken: string }>().refreshToken;
    const thirdRefreshToken = changed.json<{ refreshToken: string }>().refreshToken;
    const [{ hash }] = (await db.sql(sql`select password_hash as hash from users`)) as [
      { hash: string },
    ];

    // A failing insert: its parameters (email, hash) must not reach the log.
    await db.sql(sql`alter table users rename to users_elsewhere`);
    const failed = await app.inject({
      method: 'POST',
      url: '/api/users',
      payload: { email: 'second@example.com', username: 'second', password },
    });
    await db.sql(sql`alter table users_elsewhere rename to users`);
    expect(failed.statusCode).toBe(500);

    const text = JSON.stringify(lines);
    expect(text).not.toContain(password);
    expect(text).not.toContain(hash);
    expect(text).not.toContain(accessToken);
    for (const token of [refreshToken, secondRefreshToken, thirdRefreshToken]) {
      expect(text).not.toContain(token);
    }
    expect(text).not.toContain(newPassword);
    expect(text).not.toContain('second@example.com');
    // The failure itself is logged, with what is needed to find it.
    const failure = lines.find((line) => line.msg === 'request failed');
    expect(failure).toMatchObject({
      level: 50,
      err: {
        type: 'DrizzleQueryError',
        query: expect.stringContaining('insert into "users"'),
        cause: { code: '42P01', message: expect.stringContaining('does not exist') },
      },
    });
  });

  it('tag every request line with its request id, the client’s when it sent one', () => {
    const requestLines = lines.filter((line) => 'req' in line || 'res' in line);
    expect(requestLines.length).toBeGreaterThan(0);
    for (const line of requestLines) expect(line.requestId).toEqual(expect.any(String));
    expect(lines.some((line) => line.requestId === 'trace-me-1')).toBe(true);
  });
});
