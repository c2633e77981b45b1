import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import {
  SHARED_REDIS_URL,
  deleteKeys,
  redisTestApp,
  uniquePrefix,
  type RedisTestApp,
} from '../helpers/redis.js';

/**
 * Two instances of one deployment (two apps on one database) share their rate-limit
 * counts through the Redis at 127.0.0.1:6379, under a key prefix of this file's own.
 */
const prefix = uniquePrefix();
let db: TestDatabase;
let a: RedisTestApp;
let b: RedisTestApp;

beforeAll(async () => {
  db = await createTestDatabase();
  const env = {
    REDIS_URL: SHARED_REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    RATE_LIMIT_AUTH_MAX: '',
    RATE_LIMIT_MAX: '6',
    RATE_LIMIT_WINDOW: '1h',
    RATE_LIMIT_LOGIN_MAX: '2',
    LOGIN_MAX_FAILURES: '1000',
    // One proxy in front: X-Forwarded-For names the client.
    TRUST_PROXY: '1',
  };
  a = await redisTestApp(db, env);
  b = await redisTestApp(db, env);
}, 60_000);

afterEach(() => {
  expect([...a.violations(), ...b.violations()], 'responses outside the contract').toEqual([]);
});

afterAll(async () => {
  await a?.app.close();
  await b?.app.close();
  await db?.drop();
  await deleteKeys(SHARED_REDIS_URL, prefix);
});

const get = (app: RedisTestApp, client: string, url = '/api/posts') =>
  app.app.inject({ method: 'GET', url, headers: { 'x-forwarded-for': client } });
const login = (app: RedisTestApp, client: string) =>
  app.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    headers: { 'x-forwarded-for': client },
    payload: { email: 'nobody@example.com', password: 'guess guess' },
  });

describe('rate limits shared through Redis', () => {
  it('counts the global limit across instances', async () => {
    const client = '198.51.100.20';
    for (let i = 0; i < 6; i += 1) {
      expect((await get(i % 2 === 0 ? a : b, client)).statusCode).toBe(200);
    }
    for (const app of [a, b]) {
      const limited = await get(app, client);
      expect(limited.statusCode).toBe(429);
      expect(limited.json()).toMatchObject({ code: 'RATE_LIMITED' });
      expect(limited.headers['x-ratelimit-limit']).toBe('6');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(3500);
    }
    // The count is in Redis, under this deployment's prefix.
    const redis = new Redis(SHARED_REDIS_URL);
    try {
      expect(await redis.get(`${prefix}rl:global:${client}`)).toBe('8');
    } finally {
      redis.disconnect();
    }
  });

  it("counts an operation's own limit across instances, apart from the global one", async () => {
    const client = '198.51.100.21';
    const first = await login(a, client);
    expect(first.statusCode).toBe(401);
    expect(first.headers['x-ratelimit-remaining']).toBe('1');
    const second = await login(b, client);
    expect(second.statusCode).toBe(401);
    expect(second.headers['x-ratelimit-remaining']).toBe('0');
    const third = await login(a, client);
    expect(third.statusCode).toBe(429);
    expect(third.headers['x-ratelimit-limit']).toBe('2');
    // The global limit (6) still lets this client use other operations.
    expect((await get(b, client)).statusCode).toBe(200);
  });

  it('tells clients apart by X-Forwarded-For behind TRUST_PROXY', async () => {
    for (let i = 0; i < 6; i += 1) await get(a, '198.51.100.22');
    expect((await get(b, '198.51.100.22')).statusCode).toBe(429);
    expect((await get(b, '198.51.100.23')).statusCode).toBe(200);
  });

  it('reports Redis on /ready, which is not counted', async () => {
    for (let i = 0; i < 10; i += 1) {
      const ready = await get(i % 2 === 0 ? a : b, '198.51.100.24', '/ready');
      expect(ready.statusCode).toBe(200);
      expect(ready.json()).toEqual({ status: 'ready', database: 'up', redis: 'up' });
    }
    expect((await get(a, '198.51.100.24')).statusCode).toBe(200);
  });

  it('logs no Redis trouble while Redis is there', () => {
    const said = [...a.logs, ...b.logs].filter((line) => line.component === 'redis');
    expect(said.map((l) => [l.level, l.msg, l.message])).toEqual([]);
  });
});
