import { beforeAll, describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';

/** The probes, this document and the problem pages: never limited, never counted. */
const UNLIMITED = ['/health', '/ready', '/openapi.json', '/openapi.yaml', '/problems/rate-limited'];

/**
 * The global per-IP limit (RATE_LIMIT_MAX per RATE_LIMIT_WINDOW) on every API operation,
 * in this process's memory (no REDIS_URL): 5 an hour stands in for 3000 a minute. The
 * per-operation limits keep their own counters (login: 3 here).
 */
const t = useTestApp({
  RATE_LIMIT_AUTH_MAX: '',
  RATE_LIMIT_MAX: '5',
  RATE_LIMIT_WINDOW: '1h',
  RATE_LIMIT_LOGIN_MAX: '3',
  LOGIN_MAX_FAILURES: '1000',
});

const rejections: Array<[string, string | undefined]> = [];
beforeAll(() => {
  t.app.rateLimits.onRejected((limit, operationId) => rejections.push([limit, operationId]));
});

const UNKNOWN_ID = '0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10';

const listPosts = (remoteAddress: string) =>
  t.inject({ method: 'GET', url: '/api/posts', remoteAddress });
const login = (remoteAddress: string) =>
  t.inject({
    method: 'POST',
    url: '/api/auth/login',
    remoteAddress,
    payload: { email: 'nobody@example.com', password: 'guess guess' },
  });

describe('the global rate limit', () => {
  it('answers 429 RATE_LIMITED with Retry-After and X-RateLimit-* past RATE_LIMIT_MAX, on any operation', async () => {
    const client = '198.51.100.10';
    for (let i = 0; i < 5; i += 1) {
      const response = await listPosts(client);
      expect(response.statusCode).toBe(200);
      // Every answer says what is left of the budget.
      expect(response.headers['x-ratelimit-limit']).toBe('5');
      expect(response.headers['x-ratelimit-remaining']).toBe(String(4 - i));
    }
    rejections.length = 0;
    // Another operation, even one that would answer 404: the limit is the client's.
    const limited = await t.inject({
      method: 'GET',
      url: '/api/posts/0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10',
      remoteAddress: client,
    });
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(limited.json()).toMatchObject({
      type: '/problems/rate-limited',
      status: 429,
      code: 'RATE_LIMITED',
      instance: '/api/posts/0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10',
    });
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(3500);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    expect(limited.headers['x-ratelimit-limit']).toBe('5');
    expect(limited.headers['x-ratelimit-remaining']).toBe('0');
    expect(limited.headers['x-ratelimit-reset']).toBe(String(retryAfter));
    expect(rejections).toEqual([['global', 'getPost']]);
    // Another client address is counted apart.
    expect((await listPosts('203.0.113.10')).statusCode).toBe(200);
  });

  it('never counts the probes and the documentation', async () => {
    const client = '198.51.100.11';
    for (let i = 0; i < 3; i += 1) {
      for (const url of UNLIMITED) {
        const response = await t.inject({ method: 'GET', url, remoteAddress: client });
        expect(response.statusCode, url).toBe(200);
      }
    }
    // All 5 API requests are still there.
    for (let i = 0; i < 5; i += 1) expect((await listPosts(client)).statusCode).toBe(200);
    expect((await listPosts(client)).statusCode).toBe(429);
    // Past the limit, the probes still answer.
    expect(
      (await t.inject({ method: 'GET', url: '/health', remoteAddress: client })).statusCode,
    ).toBe(200);
    expect(
      (await t.inject({ method: 'GET', url: '/ready', remoteAddress: client })).statusCode,
    ).toBe(200);
  });

  it("keeps an operation's own limit on its own counter, both counting every request", async () => {
    const client = '198.51.100.12';
    for (let i = 0; i < 3; i += 1) {
      const response = await login(client);
      expect(response.statusCode).toBe(401);
      expect(response.headers['x-ratelimit-limit']).toBe('3');
    }
    rejections.length = 0;
    // The login's own limit (3) refuses the fourth; the global one (5) has 1 left after it.
    const ownLimit = await login(client);
    expect(ownLimit.statusCode).toBe(429);
    expect(ownLimit.headers['x-ratelimit-limit']).toBe('3');
    expect(rejections).toEqual([['login', 'login']]);
    expect((await listPosts(client)).statusCode).toBe(200);
    const global = await listPosts(client);
    expect(global.statusCode).toBe(429);
    expect(global.headers['x-ratelimit-limit']).toBe('5');
  });

  it('sends the budget left on every answer of an API operation, success or refusal', async () => {
    const client = '198.51.100.13';
    const answers = [
      await listPosts(client),
      // 404, 401, 400 and HEAD: every request of an API operation is counted.
      await t.inject({ method: 'GET', url: `/api/posts/${UNKNOWN_ID}`, remoteAddress: client }),
      await t.inject({ method: 'GET', url: '/api/auth/me', remoteAddress: client }),
      await t.inject({ method: 'GET', url: '/api/posts?limit=0', remoteAddress: client }),
      await t.inject({ method: 'HEAD', url: '/api/posts', remoteAddress: client }),
    ];
    expect(answers.map((answer) => answer.statusCode)).toEqual([200, 404, 401, 400, 200]);
    answers.forEach((answer, index) => {
      expect(answer.headers['x-ratelimit-limit'], `answer ${index}`).toBe('5');
      expect(answer.headers['x-ratelimit-remaining'], `answer ${index}`).toBe(String(4 - index));
      const reset = Number(answer.headers['x-ratelimit-reset']);
      expect(reset).toBeGreaterThan(3500);
      expect(reset).toBeLessThanOrEqual(3600);
    });
    // HEAD was counted as the fifth: the sixth request is refused.
    expect((await listPosts(client)).statusCode).toBe(429);
  });

  it('sends, on an operation with a limit of its own, whichever budget is nearer its end', async () => {
    const client = '198.51.100.14';
    // Global 5, login 3: after one list, the login's own limit is the nearer (3 → 2 left,
    // the global 5 → 3 left), then the global one (1 left after two more lists).
    expect((await listPosts(client)).headers['x-ratelimit-remaining']).toBe('4');
    const first = await login(client);
    expect(first.statusCode).toBe(401);
    expect(first.headers['x-ratelimit-limit']).toBe('3');
    expect(first.headers['x-ratelimit-remaining']).toBe('2');
    expect((await listPosts(client)).headers['x-ratelimit-remaining']).toBe('2');
    const second = await login(client);
    expect(second.statusCode).toBe(401);
    // The login's own: 1 left; the global one: 1 left too (the nearer is the smaller limit).
    expect(second.headers['x-ratelimit-limit']).toBe('3');
    expect(second.headers['x-ratelimit-remaining']).toBe('1');
    expect((await listPosts(client)).headers['x-ratelimit-remaining']).toBe('0');
    const third = await login(client);
    expect(third.statusCode).toBe(429);
    expect(third.headers['x-ratelimit-limit']).toBe('5');
    expect(third.headers['x-ratelimit-remaining']).toBe('0');
  });

  it('sends no budget on the probes, this document, the problem pages and the docs', async () => {
    for (const url of [...UNLIMITED, '/docs/']) {
      for (const method of ['GET', 'HEAD'] as const) {
        const response = await t.inject({ method, url, remoteAddress: '198.51.100.15' });
        expect(response.statusCode, `${method} ${url}`).toBe(200);
        expect(response.headers, `${method} ${url}`).not.toHaveProperty('x-ratelimit-limit');
      }
    }
  });
});
