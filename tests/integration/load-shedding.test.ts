import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';
import { redisTestApp, type RedisTestApp } from '../helpers/redis.js';

/**
 * Load shedding: past a limit (MAX_EVENT_LOOP_DELAY_MS, MAX_HEAP_USED_BYTES, …), API
 * operations answer 503 OVERLOADED with Retry-After; the probes and the documentation never
 * do. A heap limit of one byte keeps this app over its limit for good.
 */
const t = useTestApp({ MAX_HEAP_USED_BYTES: '1' });

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls GET /api/posts on `inject` until it answers `status`, for `withinMs` at most. */
async function until(
  inject: () => Promise<{ statusCode: number }>,
  status: number,
  withinMs: number,
): Promise<void> {
  const deadline = Date.now() + withinMs;
  while ((await inject()).statusCode !== status) {
    if (Date.now() > deadline) throw new Error(`never answered ${status}`);
    await pause(100);
  }
}

function expectOverloaded(response: {
  statusCode: number;
  headers: Record<string, unknown>;
  json(): unknown;
}): void {
  expect(response.statusCode).toBe(503);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.headers['retry-after']).toBe('5');
  expect(response.json()).toMatchObject({
    type: '/problems/overloaded',
    title: 'Overloaded',
    status: 503,
    code: 'OVERLOADED',
  });
}

describe('load shedding over a memory limit', () => {
  beforeAll(async () => {
    // The limits apply from two samples (seconds) after the app is ready.
    await until(() => t.inject({ method: 'GET', url: '/api/posts' }), 503, 10_000);
  }, 15_000);

  it('answers 503 OVERLOADED with Retry-After to API operations', async () => {
    expectOverloaded(await t.inject({ method: 'GET', url: '/api/posts' }));
    expectOverloaded(
      await t.inject({
        method: 'POST',
        url: '/api/users',
        payload: { email: 'shed@example.com', username: 'shed', password: 'long enough password' },
      }),
    );
  });

  it('counts a shed request against the operation’s own limit, with its headers', async () => {
    const response = await t.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: 'nobody@example.com', password: 'guess guess' },
    });
    expectOverloaded(response);
    expect(response.headers['x-ratelimit-limit']).toBeDefined();
  });

  it('always answers the probes and the documentation', async () => {
    for (const url of [
      '/health',
      '/ready',
      '/openapi.json',
      '/openapi.yaml',
      '/problems/overloaded',
    ]) {
      expect((await t.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    }
    expect((await t.inject({ method: 'GET', url: '/nope' })).statusCode).toBe(404);
  });
});

describe('load shedding when the event loop is late', () => {
  let busy: RedisTestApp;
  beforeAll(async () => {
    busy = await redisTestApp(t.db, { MAX_EVENT_LOOP_DELAY_MS: '30' });
  }, 60_000);
  afterAll(async () => {
    await busy?.app.close();
  });

  it('sheds while the loop is blocked, answers the probes, and serves again once it is not', async () => {
    const list = () => busy.app.inject({ method: 'GET', url: '/api/posts' });
    expect((await list()).statusCode).toBe(200);
    // 100 ms of busy work at a time for 3.5 s: a mean delay near 90 ms a sample (and past
    // the two seconds after ready before which the limits do not apply).
    const end = Date.now() + 3500;
    while (Date.now() < end) {
      const until = Date.now() + 100;
      while (Date.now() < until) {
        // busy
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    const shed = await list();
    expectOverloaded(shed);
    expect((await busy.app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect((await busy.app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200);
    // Once a sample finds the loop on time again, requests are served.
    await until(list, 200, 5000);
    expect(busy.violations()).toEqual([]);
    // Shed requests are no failures: nothing at error level.
    expect(busy.logs.filter((line) => Number(line.level) >= 50)).toEqual([]);
  }, 20_000);
});
