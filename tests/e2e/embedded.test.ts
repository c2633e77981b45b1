import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationsFolder } from '../../src/paths.js';
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
 * The embedded database (no DATABASE_URL) shared by the server and the npm scripts, each
 * a real process on a fresh DATA_DIR: one process owns the folder and serves it on a
 * socket inside it, the others go through that socket.
 */

const folders: string[] = [];
async function freshFolder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'api-embedded-'));
  folders.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(folders.map((dir) => rm(dir, { recursive: true, force: true })));
});

const json = { 'content-type': 'application/json' };

async function signUp(base: string, name = unique('e')) {
  const response = await fetch(`${base}/api/users`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({
      email: `${name}@example.com`,
      username: name,
      password: 'pass phrase 1234',
    }),
  });
  return response;
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
    // The email loop waits for the migrations the server runs while it starts: no warning
    // but the one that says emails are only logged.
    await sleep(300);
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
    const admin = await logIn(server.base, 'admin@example.com');
    expect(((await admin.json()) as { user: { role: string } }).user.role).toBe('admin');

    // At once, through the running server: the seed wrote into the server's database.
    for (const email of created) expect((await logIn(server.base, email)).status).toBe(200);

    expect(await server.stop()).toBe(0);
    again = await startedServer({ DATA_DIR: dir });
    for (const email of created) expect((await logIn(again.base, email)).status).toBe(200);
    const page = (await (await fetch(`${again.base}/api/users?limit=100`)).json()) as {
      items: unknown[];
    };
    // The five demo users and the demo admin.
    expect(page.items).toHaveLength(6);
  }, 120_000);

  it('is migrated by db:migrate, which says which migrations it applied', async () => {
    const dir = await freshFolder();
    const migrate = runScript('db:migrate', { DATA_DIR: dir });
    expect(await migrate.exited, migrate.output()).toBe(0);
    const applied = await allMigrations();
    expect(migrate.output()).toContain(
      `applied ${applied.length} migration${applied.length === 1 ? '' : 's'}: ${applied.join(', ')}`,
    );
    expect(existsSync(join(dir, '.s.PGSQL.5432')), 'the script gave the folder back').toBe(false);
  }, 60_000);
});

describe('a server that was killed', () => {
  const running: Running[] = [];
  afterAll(async () => {
    await Promise.all(running.map(kill));
  });

  async function killedServerFolder(): Promise<{ dir: string; email: string }> {
    const dir = await freshFolder();
    const first = await startedServer({ DATA_DIR: dir });
    running.push(first);
    const name = unique('k');
    expect((await signUp(first.base, name)).status).toBe(201);
    first.child.kill('SIGKILL');
    await first.exited;
    // What the kill leaves: a socket file that nobody listens on any more.
    expect(existsSync(join(dir, '.s.PGSQL.5432'))).toBe(true);
    return { dir, email: `${name}@example.com` };
  }

  it('leaves a folder the next server starts on, with the data it had written', async () => {
    const { dir, email } = await killedServerFolder();
    const next = await startedServer({ DATA_DIR: dir });
    running.push(next);
    expect((await logIn(next.base, email, 'pass phrase 1234')).status).toBe(200);
  }, 120_000);

  it('leaves a folder it was still initialising to the next server, which starts afresh', async () => {
    const dir = await freshFolder();
    const first = startServer({ DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1' });
    running.push(first);
    // Killed while initdb runs, its database half made in a folder of its own.
    const deadline = Date.now() + 30_000;
    while (!(await readdir(dir)).some((name) => name.startsWith('.initdb.'))) {
      if (Date.now() > deadline) throw new Error(`initdb never started:\n${first.output()}`);
      await sleep(20);
    }
    first.child.kill('SIGKILL');
    await first.exited;
    expect(existsSync(join(dir, 'PG_VERSION'))).toBe(false);

    const next = await startedServer({ DATA_DIR: dir });
    running.push(next);
    expect((await signUp(next.base)).status).toBe(201);
  }, 120_000);

  it('lets exactly one of two servers starting at once take its folder over', async () => {
    const { dir } = await killedServerFolder();
    const contenders = [startedServer({ DATA_DIR: dir }), startedServer({ DATA_DIR: dir })];
    const outcomes = await Promise.allSettled(contenders);
    for (const outcome of outcomes) if (outcome.status === 'fulfilled') running.push(outcome.value);
    const started = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    const refused = outcomes.filter((outcome) => outcome.status === 'rejected');
    expect(started).toHaveLength(1);
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
    expect((await fetch(`${server.base}/health`)).status).toBe(200);
  }, 60_000);

  it('lets db:migrate run, which says there was nothing to do', async () => {
    const migrate = runScript('db:migrate', { DATA_DIR: dir });
    expect(await migrate.exited, migrate.output()).toBe(0);
    expect(migrate.output()).toMatch(
      new RegExp(`already up to date \\(.*served by process ${server.child.pid}`),
    );
  }, 60_000);

  it('keeps its writes when a socket client rolls its own transaction back', async () => {
    const client = socketClient(dir);
    await client.connect();
    try {
      await client.query('begin');
      const intruder = unique('t');
      await client.query(
        `insert into users (email, username, password_hash) values ($1, $2, 'x')`,
        [`${intruder}@example.com`, intruder],
      );

      const name = unique('w');
      const signing = signUp(server.base, name);
      // The client's transaction has the one session: the server's insert waits for it...
      expect(await Promise.race([signing.then(() => 'answered'), sleep(500, 'waiting')])).toBe(
        'waiting',
      );
      await client.query('rollback');
      // ...and then runs on its own, so the rollback did not take it along.
      const created = await signing;
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as { id: string };
      expect((await fetch(`${server.base}/api/users/${id}`)).status).toBe(200);
      expect((await logIn(server.base, `${name}@example.com`, 'pass phrase 1234')).status).toBe(
        200,
      );
      const rows = await client.query('select 1 from users where username = $1', [intruder]);
      expect(rows.rowCount).toBe(0);
    } finally {
      await client.end();
    }
  }, 60_000);

  it('keeps two clients preparing the same statement name apart', async () => {
    const [a, b] = [socketClient(dir), socketClient(dir)];
    await Promise.all([a.connect(), b.connect()]);
    try {
      // Both at once, each its own statement under one name, ten times over.
      const ask = async (client: pg.Client, text: string) => {
        const answers: unknown[] = [];
        for (let i = 0; i < 10; i++) {
          const result = await client.query({ name: 'same_name', text, values: [i] });
          answers.push((result.rows[0] as { v: unknown }).v);
        }
        return answers;
      };
      const [numbers, texts] = await Promise.all([
        ask(a, 'select $1::int + 1 as v'),
        ask(b, "select $1::text || '!' as v"),
      ]);
      expect(numbers).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
      expect(texts).toEqual(Array.from({ length: 10 }, (_, i) => `${i}!`));
    } finally {
      await a.end();
    }
    // A client that leaves takes its statements along; the other's stay.
    await sleep(100);
    const left = await b.query<{ n: string }>(
      "select count(*) as n from pg_prepared_statements where name like '%same_name'",
    );
    await b.end();
    expect(left.rows[0]!.n).toBe('1');
  }, 60_000);

  it('answers a client over its limit as PostgreSQL does', async () => {
    // DB_POOL_MAX=2: the owner admits four pools' worth, eight connections.
    const clients = Array.from({ length: 9 }, () => socketClient(dir));
    const connected = await Promise.allSettled(clients.map((client) => client.connect()));
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
    const refusals = connected.filter((outcome) => outcome.status === 'rejected');
    expect(refusals.length).toBeGreaterThan(0);
    expect(String((refusals[0] as PromiseRejectedResult).reason)).toMatch(/too many clients/);
    expect((await fetch(`${server.base}/ready`)).status).toBe(200);
  }, 60_000);

  const psql = (() => {
    try {
      execFileSync('psql', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  it.skipIf(!psql)(
    'is open to psql -h <DATA_DIR>',
    async () => {
      expect((await signUp(server.base)).status).toBe(201);
      const count = execFileSync(
        'psql',
        ['-h', dir, '-U', 'postgres', 'postgres', '-Atc', 'select count(*) > 0 from users'],
        {
          encoding: 'utf8',
        },
      );
      expect(count.trim()).toBe('t');
    },
    60_000,
  );
});
