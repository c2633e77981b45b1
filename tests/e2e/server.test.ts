import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { freePort } from '../helpers/values.js';
import { kill, startedServer, startServer, type Server } from './processes.js';

/**
 * The server as `npm start` runs it (scripts/start.js in its own process, on a real
 * port), called the way a client calls it.
 */

describe('the server process', () => {
  let db: TestDatabase | undefined;
  let dataDir: string;
  let server: Server;
  let base: string;
  let metricsPort: number;

  beforeAll(async () => {
    metricsPort = await freePort();
    dataDir = await mkdtemp(join(tmpdir(), 'api-e2e-'));
    // The real PostgreSQL when the suite has one; else the embedded database, as `npm start`.
    db = process.env.TEST_DATABASE_URL ? await createTestDatabase() : undefined;
    server = await startedServer({
      ...(db?.url ? { DATABASE_URL: db.url } : { DATA_DIR: dataDir }),
      METRICS_PORT: String(metricsPort),
    });
    base = server.base;
  }, 60_000);

  afterAll(async () => {
    await kill(server);
    await db?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('serves sign-up, login, me, update and delete over HTTP', async () => {
    const json = { 'content-type': 'application/json' };
    const credentials = { email: 'e2e@example.com', password: 'correct horse battery staple' };
    const created = await fetch(`${base}/api/users`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ ...credentials, username: 'e2e_user' }),
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toMatch(/^\/api\/users\/[0-9a-f-]{36}$/);
    const { id } = (await created.json()) as { id: string };

    const login = await fetch(`${base}/api/auth/login`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify(credentials),
    });
    expect(login.status).toBe(200);
    const { accessToken } = (await login.json()) as { accessToken: string };
    const auth = { authorization: `Bearer ${accessToken}` };

    const me = await fetch(`${base}/api/auth/me`, { headers: auth });
    expect(await me.json()).toMatchObject({ id, email: credentials.email });

    const patched = await fetch(`${base}/api/users/${id}`, {
      method: 'PATCH',
      headers: { ...auth, ...json },
      body: JSON.stringify({ lastName: 'Lovelace' }),
    });
    expect(await patched.json()).toMatchObject({ lastName: 'Lovelace' });

    const deleted = await fetch(`${base}/api/users/${id}`, { method: 'DELETE', headers: auth });
    expect(deleted.status).toBe(200);
    expect((await fetch(`${base}/api/users/${id}`)).status).toBe(404);
  });

  it('answers the probes and publishes its contract', async () => {
    expect((await fetch(`${base}/ready`)).status).toBe(200);
    const spec = (await (await fetch(`${base}/openapi.json`)).json()) as { openapi: string };
    expect(spec.openapi).toBe('3.1.0');
  });

  it('serves its metrics on METRICS_PORT, and not on the API port', async () => {
    await fetch(`${base}/health`);
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await metrics.text()).toMatch(
      /^http_requests_total\{operation="getHealth",status="200"\} [1-9]/m,
    );
    expect((await fetch(`${base}/metrics`)).status).toBe(404);
  });

  it('shuts down cleanly on SIGTERM', async () => {
    expect(await server.stop()).toBe(0);
  }, 15_000);
});

describe('the server process with a bad configuration', () => {
  it('refuses to start in production without JWT_SECRET, saying why', async () => {
    const server = startServer({
      PORT: String(await freePort()),
      DATA_DIR: join(tmpdir(), 'api-never-made'),
      JWT_SECRET: '',
    });
    expect(await server.exited).toBe(1);
    expect(server.output()).toMatch(/JWT_SECRET is required/);
  }, 30_000);

  it('refuses to start with a DATABASE_URL and no JWT_SECRET, even in development', async () => {
    // `npm start` on a server with a real database: no random secret (nothing to connect to
    // either: the configuration is refused before any connection).
    const server = startServer({
      PORT: String(await freePort()),
      NODE_ENV: 'development',
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere',
      JWT_SECRET: '',
    });
    expect(await server.exited).toBe(1);
    expect(server.output()).toMatch(/JWT_SECRET is required .*with DATABASE_URL/);
  }, 30_000);

  it('refuses to start in production without PUBLIC_URL, saying why', async () => {
    const server = startServer({
      PORT: String(await freePort()),
      DATA_DIR: 'memory://',
      PUBLIC_URL: '',
    });
    expect(await server.exited).toBe(1);
    expect(server.output()).toMatch(/PUBLIC_URL is required when NODE_ENV=production/);
  }, 30_000);

  it('names an invalid variable', async () => {
    const server = startServer({ PORT: 'eighty' });
    expect(await server.exited).toBe(1);
    expect(server.output()).toMatch(/PORT/);
  }, 30_000);
});
