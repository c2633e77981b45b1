import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';

/**
 * The auth operations are limited per client address, each on its own counter. Small limits stand in for the defaults (100 logins and 30 sign-ups a minute),
 * and the per-account login limit is raised out of the way (login-limits.test.ts).
 */
const smallLimits = {
  RATE_LIMIT_AUTH_MAX: '',
  RATE_LIMIT_LOGIN_MAX: '3',
  RATE_LIMIT_SIGNUP_MAX: '3',
  RATE_LIMIT_REFRESH_TOKEN_MAX: '3',
  RATE_LIMIT_CHANGE_PASSWORD_MAX: '3',
  RATE_LIMIT_AUTH_WINDOW: '1h',
  LOGIN_MAX_FAILURES: '1000',
};
const t = useTestApp(smallLimits);

// Each test is its own client (address), so none depends on what another used up.
const login = (remoteAddress: string, email = 'nobody@example.com') =>
  t.inject({
    method: 'POST',
    url: '/api/auth/login',
    remoteAddress,
    payload: { email, password: 'guess guess' },
  });

describe('rate limits', () => {
  it('answers 429 with Retry-After once a client has used its logins for the window', async () => {
    const client = '198.51.100.1';
    for (let attempt = 1; attempt <= 3; attempt += 1) {
      expect((await login(client)).statusCode).toBe(401);
    }
    const limited = await login(client);
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(limited.json()).toMatchObject({ status: 429, code: 'RATE_LIMITED' });
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(3500);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    // Another account does not help: the limit is the client's.
    expect((await login(client, 'someone-else@example.com')).statusCode).toBe(429);
  });

  it('counts another client apart', async () => {
    const busy = '198.51.100.2';
    for (let attempt = 1; attempt <= 4; attempt += 1) await login(busy);
    expect((await login(busy)).statusCode).toBe(429);
    expect((await login('203.0.113.7')).statusCode).toBe(401);
  });

  it('limits sign-ups on their own counter, and leaves other operations alone', async () => {
    // This client has used up its logins; its sign-ups are counted apart.
    for (let attempt = 1; attempt <= 3; attempt += 1) await login('198.51.100.3');
    expect((await login('198.51.100.3')).statusCode).toBe(429);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      const response = await t.inject({
        method: 'POST',
        url: '/api/users',
        remoteAddress: '198.51.100.3',
        payload: {
          email: `limited${i}@example.com`,
          username: `limited${i}`,
          password: 'long enough',
        },
      });
      statuses.push(response.statusCode);
    }
    expect(statuses).toEqual([201, 201, 201, 429]);
    for (let i = 0; i < 20; i += 1) {
      const list = await t.inject({
        method: 'GET',
        url: '/api/users',
        remoteAddress: '198.51.100.3',
      });
      expect(list.statusCode).toBe(200);
    }
  });
});

describe('rate limits of refreshToken and changePassword', () => {
  // Refused requests count too: the limit is taken before the token is looked at.
  it.each([
    [
      'refreshToken',
      '198.51.100.10',
      { url: '/api/auth/refresh', payload: { refreshToken: 'guess' } },
    ],
    [
      'changePassword',
      '198.51.100.11',
      {
        url: '/api/auth/password/change',
        payload: { currentPassword: 'guess guess', newPassword: 'another guess' },
      },
    ],
  ] as const)('limits %s per client, on its own counter', async (_name, client, request) => {
    const statuses: number[] = [];
    for (let attempt = 1; attempt <= 4; attempt += 1) {
      const response = await t.inject({ method: 'POST', remoteAddress: client, ...request });
      statuses.push(response.statusCode);
    }
    expect(statuses).toEqual([401, 401, 401, 429]);
    // Logins of the same client are counted apart.
    expect((await login(client)).statusCode).toBe(401);
  });
});

describe('rate limits and X-Forwarded-For', () => {
  // The default TRUST_PROXY: the header is the client's word, and changes nothing.
  it('ignores a spoofed X-Forwarded-For when no proxy is trusted', async () => {
    const client = '198.51.100.4';
    const statuses: number[] = [];
    for (let attempt = 1; attempt <= 4; attempt += 1) {
      const response = await t.inject({
        method: 'POST',
        url: '/api/auth/login',
        remoteAddress: client,
        headers: { 'x-forwarded-for': `203.0.113.${attempt}` },
        payload: { email: 'nobody@example.com', password: 'guess guess' },
      });
      statuses.push(response.statusCode);
    }
    expect(statuses).toEqual([401, 401, 401, 429]);
  });
});

describe('rate limits behind a trusted proxy', () => {
  const proxy = '192.0.2.10';
  const behind = useTestApp({ ...smallLimits, TRUST_PROXY: `${proxy}, 192.0.2.128/25` });
  const loginVia = (remoteAddress: string, forwardedFor: string) =>
    behind.inject({
      method: 'POST',
      url: '/api/auth/login',
      remoteAddress,
      headers: { 'x-forwarded-for': forwardedFor },
      payload: { email: 'nobody@example.com', password: 'guess guess' },
    });

  it('counts each client the proxy names apart', async () => {
    for (let attempt = 1; attempt <= 3; attempt += 1) {
      expect((await loginVia(proxy, '203.0.113.50')).statusCode).toBe(401);
    }
    expect((await loginVia(proxy, '203.0.113.50')).statusCode).toBe(429);
    // Another client behind the same proxy, and the same one through a proxy of the range.
    expect((await loginVia(proxy, '203.0.113.51')).statusCode).toBe(401);
    expect((await loginVia('192.0.2.200', '203.0.113.50')).statusCode).toBe(429);
  });

  it('believes no header from an address that is not a trusted proxy', async () => {
    const stranger = '198.51.100.99';
    const statuses: number[] = [];
    for (let attempt = 1; attempt <= 4; attempt += 1) {
      statuses.push((await loginVia(stranger, `203.0.113.${100 + attempt}`)).statusCode);
    }
    expect(statuses).toEqual([401, 401, 401, 429]);
  });
});

describe('rate limits by default', () => {
  const defaults = useTestApp({ RATE_LIMIT_AUTH_MAX: '' });

  it('allows 100 logins and 30 sign-ups a minute per client', async () => {
    const loginResponse = await defaults.inject({
      method: 'POST',
      url: '/api/auth/login',
      remoteAddress: '198.51.100.50',
      payload: { email: 'nobody@example.com', password: 'guess guess' },
    });
    expect(loginResponse.statusCode).toBe(401);
    expect(loginResponse.headers['x-ratelimit-limit']).toBe('100');
    expect(loginResponse.headers['x-ratelimit-remaining']).toBe('99');
    expect(Number(loginResponse.headers['x-ratelimit-reset'])).toBeLessThanOrEqual(60);

    const signUp = await defaults.inject({
      method: 'POST',
      url: '/api/users',
      remoteAddress: '198.51.100.50',
      payload: { email: 'fresh@example.com', username: 'fresh', password: 'long enough' },
    });
    expect(signUp.statusCode).toBe(201);
    expect(signUp.headers['x-ratelimit-limit']).toBe('30');
    expect(signUp.headers['x-ratelimit-remaining']).toBe('29');
  });
});

describe('RATE_LIMIT_AUTH_MAX', () => {
  const raised = useTestApp({
    RATE_LIMIT_AUTH_MAX: '5',
    RATE_LIMIT_LOGIN_MAX: '2',
    RATE_LIMIT_SIGNUP_MAX: '50',
    LOGIN_MAX_FAILURES: '1000',
  });

  it('raises a lower per-IP limit to its value, and lowers none', async () => {
    const statuses: number[] = [];
    for (let attempt = 1; attempt <= 6; attempt += 1) {
      const response = await raised.inject({
        method: 'POST',
        url: '/api/auth/login',
        remoteAddress: '198.51.100.60',
        payload: { email: 'nobody@example.com', password: 'guess guess' },
      });
      statuses.push(response.statusCode);
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
    const signUp = await raised.inject({
      method: 'POST',
      url: '/api/users',
      remoteAddress: '198.51.100.60',
      payload: { email: 'raised@example.com', username: 'raised', password: 'long enough' },
    });
    expect(signUp.headers['x-ratelimit-limit']).toBe('50');
  });
});
