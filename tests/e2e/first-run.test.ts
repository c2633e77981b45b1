import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, unique } from '../helpers/values.js';
import { startServer } from './processes.js';

/**
 * The unhappy first runs: each ends with exit code 1 and one line that names the cause and
 * the setting to change, never a stack trace, a "ready" followed by errors, or a folder
 * left behind.
 */

const serverUrl = process.env.TEST_DATABASE_URL!;

function urlWith(change: (url: URL) => void): string {
  const url = new URL(serverUrl);
  change(url);
  return url.toString();
}

async function refusal(env: Record<string, string>): Promise<string> {
  const server = startServer({ PORT: String(await freePort()), HOST: '127.0.0.1', ...env });
  const code = await server.exited;
  const output = server.output();
  expect(code, output).toBe(1);
  expect(output, 'a stack trace').not.toMatch(/^\s+at /m);
  expect(output).not.toMatch(/"msg":"ready"/);
  return output;
}

describe('a server whose database cannot be used', () => {
  let empty: string;
  beforeAll(async () => {
    empty = unique('unmigrated');
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    await admin.query(`create database "${empty}"`);
    await admin.end();
  });
  afterAll(async () => {
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    await admin.query(`drop database if exists "${empty}" with (force)`);
    await admin.end();
  });

  it('refuses an unmigrated database, naming npm run db:migrate', async () => {
    const output = await refusal({
      DATABASE_URL: urlWith((url) => (url.pathname = `/${empty}`)),
    });
    expect(output).toMatch(
      /is not migrated: \d+ migrations pending \(0000_users, .*npm run db:migrate/,
    );
  }, 30_000);

  it('refuses a database that does not exist', async () => {
    const output = await refusal({
      DATABASE_URL: urlWith((url) => (url.pathname = `/${unique('missing')}`)),
    });
    expect(output).toMatch(/does not exist.*DATABASE_URL/);
  }, 30_000);

  it('refuses an unknown role', async () => {
    const output = await refusal({
      DATABASE_URL: urlWith((url) => (url.username = unique('nobody'))),
    });
    expect(output).toMatch(/refused the login.*check the user and password in DATABASE_URL/);
  }, 30_000);

  it('refuses a database nobody listens for, without the password', async () => {
    const port = await freePort();
    const output = await refusal({
      DATABASE_URL: `postgres://someone:s3cret-word@127.0.0.1:${port}/app`,
    });
    expect(output).toMatch(
      new RegExp(
        `Cannot reach the database at postgres://someone@127.0.0.1:${port}/app: connection refused`,
      ),
    );
    expect(output).not.toContain('s3cret-word');
  }, 30_000);
});

describe('a server whose port is taken', () => {
  let holder: NetServer;
  let port: number;
  let dir: string;
  beforeAll(async () => {
    port = await freePort();
    holder = createServer();
    await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
    dir = await mkdtemp(join(tmpdir(), 'api-first-run-'));
  });
  afterAll(async () => {
    holder.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('says so in one line, and makes no data folder', async () => {
    const folder = join(dir, 'data');
    const server = startServer({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: folder });
    expect(await server.exited).toBe(1);
    expect(server.output()).toMatch(
      new RegExp(`Port ${port} on 127.0.0.1 is in use by another process: stop it, or set PORT`),
    );
    expect(server.output()).not.toMatch(/^\s+at /m);
    expect(existsSync(folder)).toBe(false);
  }, 30_000);
});
