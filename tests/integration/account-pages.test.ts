import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { TEST_JWT_SECRET, useTestApp } from '../helpers/app.js';

/** The pages the development log's account links open (tests/e2e/account-pages.test.ts clicks them). */
describe('the account pages outside production', () => {
  const t = useTestApp();

  it.each(['/verify-email', '/reset-password'])(
    '%s is a page that keeps its address to itself and never echoes the token',
    async (path) => {
      const token = 'secret-token-from-the-link';
      const response = await t.inject({ method: 'GET', url: `${path}?token=${token}` });
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(response.headers['cache-control']).toBe('no-store');
      expect(response.headers['referrer-policy']).toBe('no-referrer');
      expect(response.headers['content-security-policy']).toMatch(/script-src 'self'/);
      expect(response.body).not.toContain(token);
      expect(response.body).toContain('<script src="/account-pages.js" defer></script>');
    },
  );

  it("serves the pages' script", async () => {
    const response = await t.inject({ method: 'GET', url: '/account-pages.js' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/javascript; charset=utf-8');
  });
});

describe('the account pages in production', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await buildApp(
      loadConfig({
        NODE_ENV: 'production',
        LOG_LEVEL: 'silent',
        JWT_SECRET: TEST_JWT_SECRET,
        PUBLIC_URL: 'https://app.example.com',
        DATABASE_URL: process.env.TEST_DATABASE_URL!,
      }),
    );
  });
  afterAll(async () => {
    await app?.close();
  });

  it('are not there: PUBLIC_URL is the application that has them', async () => {
    for (const url of ['/verify-email?token=x', '/reset-password?token=x', '/account-pages.js']) {
      expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(404);
    }
  });
});
