import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationsFolder, projectRoot } from '../../src/paths.js';
import { unique } from '../helpers/values.js';
import {
  kill,
  logIn,
  runScript,
  startedServer,
  startServer,
  type Running,
  type Server,
} from './processes.js';

/**
 * The embedded database (no DATABASE_URL): a PostgreSQL server on DATA_DIR, run by the
 * process that owns the folder (the API server, or a script when no server runs), that
 * every other process reaches through the socket in the folder. Each test runs real
 * processes on a fresh folder.
 */

const folders: string[] = [];
async function freshFolder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'api-embedded-'));
  folders.push(dir);
  return dir;
}

/** The postmaster on a folder, from PostgreSQL's own pid file; null when none runs. */
async function postmasterOf(dir: string): Promise<number | null> {
  const text = await readFile(join(dir, 'postgres', 'postmaster.pid'), 'utf8').catch(() => null);
  const pid = Number(text?.split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 && running(pid) ? pid : null;
}

/** Whether a process runs (a zombie, dead but not yet reaped by its parent, does not). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(execFileSync('cat', [`/proc/${pid}/stat`], { encoding: 'utf8' }));
  } catch {
    return process.platform !== 'linux';
  }
}

afterAll(async () => {
  // Whatever a failed test left running on its folders.
  for (const dir of folders) {
    const pid = await postmasterOf(dir);
    if (pid) process.kill(pid, 'SIGQUIT');
  }
  await Promise.all(folders.map((dir) => rm(dir, { recursive: true, force: true })));
});

const json = { 'content-type': 'application/json' };

async function signUp(base: string, name = unique('e')) {
  return fetch(`${base}/api/users`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({
      email: `${name}@example.com`,
      username: name,
      password: 'pass phrase 1234',
    }),
  });
}

function socketClient(dir: string): pg.Client {
  const client = new pg.Client({ host: dir, port: 5432, user: 'postgres', database: 'postgres' });
  // A connection the server ends is an outcome the test looks at, not a crash of the run.
  client.on('error', () => undefined);
  return client;
}

/** What `db:migrate` should say it applied to a new database: every file in drizzle/. */
async function allMigrations(): Promise<string[]> {
  const journal = JSON.parse(
    await readFile(join(migrationsFolder, 'meta', '_journal.json'), 'utf8'),
  ) as { entries: { tag: string }[] };
  return journal.entries.map((entry) => entry.tag);
}

const psql = (() => {
  try {
    execFileSync('psql', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('the embedded database of a fresh folder', () => {
  let server: Server | undefined;
  let again: Server | undefined;
  afterAll(async () => {
    await kill(server);
    await kill(again);
  });

  it('sees what db:seed writes while it runs, and still has it after a restart', async () => {
    const dir = await freshFolder();
    server = await startedServer({ DATA_DIR: dir });
    // The server migrated its new database before it listened: no warning but the one
    // that says emails are only logged.
    const warnings = server
      .output()
      .split('\n')
      .filter((line) => /"level":[4-6]0/.test(line) && !line.includes('SMTP_URL is not set'));
    expect(warnings).toEqual([]);

    const seed = runScript('db:seed', { DATA_DIR: dir });
    expect(await seed.exited, seed.output()).toBe(0);
    const created = [...seed.output().matchAll(/^created (\S+)$/gm)].map((match) => match[1]!);
    expect(created).toHaveLength(5);
    expect(seed.output()).toMatch(/^created admin@example\.com \(admin\)$/m);

    // At once, through the running server: the seed wrote into the server's database.
    for (const email of created) expect((await logIn(server.base, email)).status).toBe(200);

    expect(await server.stop()).toBe(0);
    again = await startedServer({ DATA_DIR: dir });
    for (const email of created) expect((await logIn(again.base, email)).status).toBe(200);
  }, 120_000);

  it('runs the jobs on its new database in development: a sign-up is mailed at once', async () => {
    const dir = await freshFolder();
    // As a newcomer runs it: development, the jobs inside the server, no SMTP_URL. The job
    // queue opens once the database is up (it is not while the app is built).
    server = await startedServer({
      DATA_DIR: dir,
      NODE_ENV: 'development',
      LOG_LEVEL: 'info',
      EMAIL_POLL_INTERVAL: '1h',
    });
    const created = await fetch(`${server.base}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        email: 'newcomer@example.com',
        username: 'newcomer',
        password: 'pass phrase 1234',
      }),
    });
    expect(created.status).toBe(201);
    // Sent by the job its commit queued (the schedule is an hour away): logged, as emails
    // are without SMTP_URL.
    const deadline = Date.now() + 20_000;
    while (!server.output().includes('email not sent (SMTP_URL is not set)')) {
      if (Date.now() > deadline) throw new Error(`no email was sent:\n${server.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const warnings = server
      .output()
      .split('\n')
      .filter((line) => /\bWARN\b|"level":[4-6]0/.test(line))
      .filter((line) => !/SMTP_URL is not set|JWT_SECRET is not set/.test(line));
    expect(warnings).toEqual([]);
    expect(await server.stop()).toBe(0);
  }, 120_000);

  it('is made and migrated by db:migrate, which stops its database when done', async () => {
    const dir = await freshFolder();
    const migrate = runScript('db:migrate', { DATA_DIR: dir });
    expect(await migrate.exited, migrate.output()).toBe(0);
    const applied = await allMigrations();
    expect(migrate.output()).toContain(
      `applied ${applied.length} migration${applied.length === 1 ? '' : 's'}: ${applied.join(', ')}`,
    );
    expect(await postmasterOf(dir), 'a PostgreSQL still runs on the folder').toBeNull();
    expect(existsSync(join(dir, 'postgres', 'postmaster.pid'))).toBe(false);
    expect(existsSync(join(dir, 'owner.json')), 'the script gave the folder back').toBe(false);
  }, 60_000);
});

describe('a server that stops', () => {
  const started: Running[] = [];
  afterAll(async () => {
    await Promise.all(started.map(kill));
  });

  it('on SIGTERM, leaves no PostgreSQL process of its folder behind', async () => {
    const dir = await freshFolder();
    const server = await startedServer({ DATA_DIR: dir });
    started.push(server);
    const postmaster = await postmasterOf(dir);
    expect(postmaster).not.toBeNull();
    expect(await server.stop()).toBe(0);
    expect(running(postmaster!)).toBe(false);
    expect(await postmasterOf(dir)).toBeNull();
  }, 60_000);

  it('on the same signal twice at once (npm passing on a Ctrl-C), stops as on one', async () => {
    const dir = await freshFolder();
    const server = await startedServer({ DATA_DIR: dir });
    started.push(server);
    const postmaster = (await postmasterOf(dir))!;
    server.child.kill('SIGINT');
    server.child.kill('SIGINT');
    expect(await server.exited).toBe(0);
    expect(running(postmaster)).toBe(false);
  }, 60_000);

  async function killedServerFolder(): Promise<{ dir: string; email: string; orphan: number }> {
    const dir = await freshFolder();
    const first = await startedServer({ DATA_DIR: dir });
    started.push(first);
    const name = unique('k');
    expect((await signUp(first.base, name)).status).toBe(201);
    first.child.kill('SIGKILL');
    await first.exited;
    // PostgreSQL does not follow its parent: the killed server's database still runs.
    const orphan = await postmasterOf(dir);
    expect(orphan, 'the killed server left its PostgreSQL running').not.toBeNull();
    return { dir, email: `${name}@example.com`, orphan: orphan! };
  }

  it('killed, leaves a folder the next server stops the orphan on and starts with its data', async () => {
    const { dir, email, orphan } = await killedServerFolder();
    const next = await startedServer({ DATA_DIR: dir });
    started.push(next);
    expect(running(orphan)).toBe(false);
    expect(await postmasterOf(dir)).not.toBe(orphan);
    expect((await logIn(next.base, email, 'pass phrase 1234')).status).toBe(200);
  }, 120_000);

  it('killed while initdb runs, leaves a folder the next server starts afresh on', async () => {
    const dir = await freshFolder();
    const first = startServer({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1' });
    started.push(first);
    // Killed while initdb writes the cluster into a folder of its own.
    const deadline = Date.now() + 30_000;
    while (!(await readdir(dir).catch(() => [])).some((name) => name.startsWith('.initdb.'))) {
      if (Date.now() > deadline) throw new Error(`initdb never started:\n${first.output()}`);
      await sleep(5);
    }
    first.child.kill('SIGKILL');
    await first.exited;
    expect(existsSync(join(dir, 'postgres', 'PG_VERSION'))).toBe(false);

    const next = await startedServer({ DATA_DIR: dir });
    started.push(next);
    expect((await signUp(next.base)).status).toBe(201);
    expect((await readdir(dir)).filter((name) => name.startsWith('.initdb.'))).toEqual([]);
  }, 120_000);

  it('killed, lets exactly one of two servers starting at once take its folder over', async () => {
    const { dir } = await killedServerFolder();
    const contenders = [startedServer({ DATA_DIR: dir }), startedServer({ DATA_DIR: dir })];
    const outcomes = await Promise.allSettled(contenders);
    for (const outcome of outcomes) if (outcome.status === 'fulfilled') started.push(outcome.value);
    const up = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    const refused = outcomes.filter((outcome) => outcome.status === 'rejected');
    expect(up).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect(String((refused[0] as PromiseRejectedResult).reason)).toMatch(/is in use by process/);
  }, 120_000);
});

describe('a running server and the processes beside it', () => {
  let dir: string;
  let server: Server;

  beforeAll(async () => {
    dir = await freshFolder();
    server = await startedServer({ DATA_DIR: dir, DB_POOL_MAX: '2' });
  }, 60_000);
  afterAll(async () => {
    await kill(server);
  });

  it('is the only server: a second one exits, naming the owner and what to do', async () => {
    const second = startServer({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1' });
    expect(await second.exited).toBe(1);
    expect(second.output()).toMatch(
      new RegExp(`is in use by process ${server.child.pid} \\(the API server`),
    );
    expect(second.output()).toMatch(/Stop that process.*set DATABASE_URL/s);
    expect(second.output()).not.toMatch(/^\s+at /m);
    expect((await fetch(`${server.base}/health`)).status).toBe(200);
  }, 60_000);

  it('lets db:migrate run, which says there was nothing to do', async () => {
    const migrate = runScript('db:migrate', { DATA_DIR: dir });
    expect(await migrate.exited, migrate.output()).toBe(0);
    expect(migrate.output()).toMatch(
      new RegExp(`already up to date \\(.*served by process ${server.child.pid}`),
    );
  }, 60_000);

  it('answers the API while another client sits in an open transaction', async () => {
    const client = socketClient(dir);
    await client.connect();
    try {
      await client.query('begin');
      const intruder = unique('t');
      await client.query(
        `insert into users (email, username, password_hash) values ($1, $2, 'x')`,
        [`${intruder}@example.com`, intruder],
      );
      // The transaction stays open, idle, while the server signs a user up and reads it.
      const name = unique('w');
      const created = await signUp(server.base, name);
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as { id: string };
      expect((await fetch(`${server.base}/api/users/${id}`)).status).toBe(200);
      const after = await client.query<{ n: string }>(
        'select count(*) as n from users where username = $1',
        [intruder],
      );
      expect(after.rows[0]!.n, 'the transaction is still open: its row is there').toBe('1');
      await client.query('rollback');
      expect((await logIn(server.base, `${name}@example.com`, 'pass phrase 1234')).status).toBe(
        200,
      );
      const rows = await client.query('select 1 from users where username = $1', [intruder]);
      expect(rows.rowCount).toBe(0);
    } finally {
      await client.end();
    }
  }, 60_000);

  it('keeps one session settings and prepared statements to itself', async () => {
    const [a, b] = [socketClient(dir), socketClient(dir)];
    await Promise.all([a.connect(), b.connect()]);
    try {
      await a.query("set timezone = 'America/Sao_Paulo'");
      expect((await b.query<{ TimeZone: string }>('show timezone')).rows[0]!.TimeZone).toBe('UTC');

      const first = await a.query({
        name: 'same_name',
        text: 'select $1::int + 1 as v',
        values: [1],
      });
      expect(first.rows[0]).toEqual({ v: 2 });
      await b.query('deallocate all');
      const second = await a.query({
        name: 'same_name',
        text: 'select $1::int + 1 as v',
        values: [2],
      });
      expect(second.rows[0]).toEqual({ v: 3 });
      // The server's own named statements survive another client's DEALLOCATE ALL too.
      for (let i = 0; i < 3; i++) {
        expect((await fetch(`${server.base}/api/posts?limit=5`)).status).toBe(200);
      }
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  }, 60_000);

  it('enforces statement_timeout', async () => {
    const client = socketClient(dir);
    await client.connect();
    try {
      await client.query('set statement_timeout = 200');
      const started = Date.now();
      const outcome = await client.query('select pg_sleep(5)').catch((error: unknown) => error);
      expect((outcome as { code?: string }).code).toBe('57014');
      expect(Date.now() - started).toBeLessThan(4000);
    } finally {
      await client.end();
    }
  }, 60_000);

  it.skipIf(!psql)(
    "honours a client's cancel request (psql's Ctrl-C)",
    async () => {
      const tag = unique('cancel');
      const sleeper = spawn(
        'psql',
        ['-h', dir, '-U', 'postgres', 'postgres', '-c', `select pg_sleep(30) /* ${tag} */`],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      sleeper.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => sleeper.once('exit', resolve));
      const watcher = socketClient(dir);
      await watcher.connect();
      try {
        for (;;) {
          const seen = await watcher.query(
            `select 1 from pg_stat_activity where state = 'active' and query like '%' || $1 || '%' and pid <> pg_backend_pid()`,
            [tag],
          );
          if (seen.rowCount) break;
          await sleep(20);
        }
        const started = Date.now();
        sleeper.kill('SIGINT');
        expect(await exited).not.toBe(0);
        expect(output).toMatch(/canceling statement due to user request/);
        expect(Date.now() - started).toBeLessThan(5000);
      } finally {
        await watcher.end();
        sleeper.kill('SIGKILL');
      }
    },
    60_000,
  );

  it('answers a client over its limit as PostgreSQL does', async () => {
    // DB_POOL_MAX=2: the server admits 2 × 4 + 10 connections, its own pool's among them.
    const clients = Array.from({ length: 20 }, () => socketClient(dir));
    const connected = await Promise.allSettled(clients.map((client) => client.connect()));
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
    const refusals = connected.filter((outcome) => outcome.status === 'rejected');
    expect(refusals.length).toBeGreaterThan(0);
    expect(String((refusals[0] as PromiseRejectedResult).reason)).toMatch(/too many clients/);
    expect((await fetch(`${server.base}/ready`)).status).toBe(200);
  }, 60_000);

  it.skipIf(!psql)(
    'is open to psql -h <DATA_DIR>',
    async () => {
      expect((await signUp(server.base)).status).toBe(201);
      const count = execFileSync(
        'psql',
        ['-h', dir, '-U', 'postgres', 'postgres', '-Atc', 'select count(*) > 0 from users'],
        { encoding: 'utf8' },
      );
      expect(count.trim()).toBe('t');
    },
    60_000,
  );
});

/** Whether uid 1000 can read the project (a clone under a private home folder it cannot). */
function readableBy(uid: number): boolean {
  try {
    execFileSync('setpriv', [
      `--reuid=${uid}`,
      `--regid=${uid}`,
      '--clear-groups',
      'test',
      '-r',
      join(projectRoot, 'package.json'),
    ]);
    return true;
  } catch {
    return false;
  }
}
const asRoot = process.getuid?.() === 0;

/** The user id a process runs as. */
function uidOf(pid: number): string {
  return execFileSync('ps', ['-o', 'uid=', '-p', String(pid)], { encoding: 'utf8' }).trim();
}

describe('who runs the database', () => {
  it.skipIf(asRoot)(
    'is this user, when it is not root',
    async () => {
      const dir = await freshFolder();
      const server = await startedServer({ DATA_DIR: dir });
      try {
        const postmaster = (await postmasterOf(dir))!;
        expect(uidOf(postmaster)).toBe(String(process.getuid?.()));
      } finally {
        await kill(server);
      }
    },
    60_000,
  );

  it.skipIf(!asRoot)(
    "is another user when the server runs as root (PostgreSQL refuses root), and the server's own user when not",
    async () => {
      const asRootDir = await freshFolder();
      const rootServer = await startedServer({ DATA_DIR: asRootDir });
      try {
        const postmaster = (await postmasterOf(asRootDir))!;
        const uid = uidOf(postmaster);
        expect(uid).not.toBe('0');
        expect((await signUp(rootServer.base)).status).toBe(201);
      } finally {
        await kill(rootServer);
      }

      if (!readableBy(1000)) {
        console.warn('skipped the run as uid 1000: it cannot read this project');
        return;
      }
      const dir = await freshFolder();
      await chown(dir, 1000, 1000);
      const user = { uid: 1000, gid: 1000 };
      const server = await startedServer({ DATA_DIR: dir, HOME: dir }, user);
      try {
        const postmaster = (await postmasterOf(dir))!;
        expect(uidOf(postmaster)).toBe('1000');
        expect((await signUp(server.base)).status).toBe(201);
        expect(await server.stop()).toBe(0);
        expect(running(postmaster)).toBe(false);
      } finally {
        await kill(server);
      }
    },
    120_000,
  );
});

describe('a folder of the earlier embedded engine (PGlite)', () => {
  it('is refused with the command that brings its data over, which does', async () => {
    const dir = await freshFolder();
    // DATA_DIR is a folder inside it: one the database's user may enter, when it is not root.
    await chmod(dir, 0o755);
    // A PGlite folder as the earlier server left it, with a user in it. The script that
    // makes it sits inside the project, where its imports resolve.
    const cache = join(projectRoot, 'node_modules', '.cache');
    await mkdir(cache, { recursive: true });
    const maker = join(cache, `make-pglite-${process.pid}.mjs`);
    await writeFile(
      maker,
      `import { PGlite } from '@electric-sql/pglite';
       import { drizzle } from 'drizzle-orm/pglite';
       import { migrate } from 'drizzle-orm/pglite/migrator';
       import bcrypt from 'bcryptjs';
       const db = await PGlite.create({ dataDir: process.argv[2] });
       await migrate(drizzle({ client: db }), { migrationsFolder: process.argv[3] });
       await db.query("insert into users (email, username, password_hash) values ('old@example.com', 'olduser', $1)", [bcrypt.hashSync('pass phrase 1234', 4)]);
       await db.close();`,
    );
    const old = join(dir, 'data');
    try {
      await promisify(execFile)(process.execPath, [maker, old, migrationsFolder]);
    } finally {
      await rm(maker, { force: true });
    }

    const refused = startServer({ DATA_DIR: old, PORT: '0', HOST: '127.0.0.1' });
    expect(await refused.exited).toBe(1);
    expect(refused.output()).toContain(`npm run db:import-pglite -- ${old}`);
    expect(refused.output()).not.toMatch(/^\s+at /m);

    const imported = runScript('db:import-pglite', { DATA_DIR: old });
    expect(await imported.exited, imported.output()).toBe(0);
    expect(imported.output()).toMatch(/^users: 1 rows$/m);

    const server = await startedServer({ DATA_DIR: old });
    try {
      expect((await logIn(server.base, 'old@example.com', 'pass phrase 1234')).status).toBe(200);
    } finally {
      await kill(server);
    }
    expect(existsSync(join(old, 'pglite-backup', 'PG_VERSION'))).toBe(true);
  }, 180_000);
});
