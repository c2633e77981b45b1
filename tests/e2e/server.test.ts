import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { freePort } from '../helpers/values.js';

/**
 * The server as `npm start` runs it (scripts/start.js in its own process, on a real
 * port), called the way a client calls it.
 */

function startServer(env: Record<string, string>): { child: ChildProcess; output: () => string } {
  let output = '';
  const child = spawn(process.execPath, ['scripts/start.js'], {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return { child, output: () => output };
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

describe('the server process', () => {
  let db: TestDatabase | undefined;
  let dataDir: string;
  let server: ReturnType<typeof startServer>;
  let base: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'api-e2e-'));
    // The real PostgreSQL when the suite has one; else the embedded database, as `npm start`.
    db = process.env.TEST_DATABASE_URL ? await createTestDatabase() : undefined;
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = startServer({
      PORT: String(port),
      HOST: '127.0.0.1',
      JWT_SECRET: 'e2e-secret-e2e-secret-e2e-secret-e2e',
      BCRYPT_COST: '4',
      ...(db?.url ? { DATABASE_URL: db.url } : { DATA_DIR: dataDir }),
    });
    const deadline = Date.now() + 45_000;
    for (;;) {
      try {
        if ((await fetch(`${base}/health`)).ok) break;
      } catch {
        // not listening yet
      }
      if (server.child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`the server did not start:\n${server.output()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }, 60_000);

  afterAll(async () => {
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
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

  it('shuts down cleanly on SIGTERM', async () => {
    server.child.kill('SIGTERM');
    expect(await exitOf(server.child)).toBe(0);
  }, 15_000);
});

describe('the server process with a bad configuration', () => {
  it('refuses to start in production without JWT_SECRET, saying why', async () => {
    const server = startServer({ PORT: String(await freePort()), DATA_DIR: 'memory://' });
    expect(await exitOf(server.child)).toBe(1);
    expect(server.output()).toMatch(/JWT_SECRET is required/);
  }, 30_000);

  it('names an invalid variable', async () => {
    const server = startServer({ PORT: 'eighty', JWT_SECRET: 'x'.repeat(32) });
    expect(await exitOf(server.child)).toBe(1);
    expect(server.output()).toMatch(/PORT/);
  }, 30_000);
});
