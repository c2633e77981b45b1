import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { appendFile, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createDatabase } from '../../src/db/client.js';
import { freePort } from './values.js';

/**
 * A PostgreSQL cluster of the tests' own (initdb + pg_ctl), on a port of its own, that the
 * tests may stop, crash and start again: the shared server is never touched. It is stopped
 * and deleted by destroy(), by an exit handler, and, should the test process be killed, by
 * a watchdog process that outlives it.
 */
export interface Cluster {
  readonly port: number;
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  urlOf(database: string): string;
  /** pg_ctl stop: 'fast' ends the sessions cleanly, 'immediate' is a crash. */
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  /** pg_ctl start; resolves when the database accepts connections. */
  start(): Promise<void>;
  /** A new, migrated database in this cluster (the project's own migrator). */
  createDatabase(name: string): Promise<string>;
  /** Stops the cluster, whatever its state, and deletes its files. */
  destroy(): Promise<void>;
}

const run = promisify(execFile);

/** The PostgreSQL server binaries: on PATH, or in the newest /usr/lib/postgresql/<n>/bin. */
export function postgresBinaries(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  }
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((name) => /^[0-9]+$/.test(name))
    .sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const dir = join(base, version, 'bin');
    if (existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  }
  return undefined;
}

/** initdb and pg_ctl refuse to run as root: as root, they run as the `postgres` user. */
const asRoot = process.getuid?.() === 0;

function commandOf(bin: string, tool: string, args: string[]): [string, string[]] {
  const path = join(bin, tool);
  return asRoot ? ['runuser', ['-u', 'postgres', '--', path, ...args]] : [path, args];
}

async function tool(bin: string, name: string, args: string[]): Promise<string> {
  const [command, commandArgs] = commandOf(bin, name, args);
  try {
    const { stdout } = await run(command, commandArgs, { timeout: 60_000 });
    return stdout;
  } catch (error) {
    const { stderr, stdout } = error as { stderr?: string; stdout?: string };
    throw new Error(`${name} ${args.join(' ')} failed: ${stderr ?? ''}${stdout ?? ''}`, {
      cause: error,
    });
  }
}

/** initdb, configured for speed (no fsync: the data is thrown away), and started. */
export async function startCluster(): Promise<Cluster> {
  const bin = postgresBinaries();
  if (!bin) throw new Error('initdb and pg_ctl were not found (PATH, /usr/lib/postgresql)');
  const root = await mkdtemp(join(tmpdir(), 'pg-cluster-'));
  if (asRoot) await chown(root, ...postgresIds());
  const data = join(root, 'data');
  const log = join(root, 'postgres.log');
  const port = await freePort();

  // Stops the cluster and deletes it when this process is gone, however it ends.
  const watchdog = spawn(
    'sh',
    [
      '-c',
      `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ` +
        `${commandOf(bin, 'pg_ctl', ['-D', data, '-m', 'immediate', 'stop'])
          .flat()
          .map((word) => `'${word}'`)
          .join(' ')} >/dev/null 2>&1; rm -rf '${root}'`,
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();

  let destroyed = false;
  const stopNow = () => {
    if (destroyed) return;
    const [command, args] = commandOf(bin, 'pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
    spawnSync(command, args, { stdio: 'ignore', timeout: 10_000 });
    spawnSync('rm', ['-rf', root]);
  };
  process.once('exit', stopNow);

  const pgCtl = (args: string[]) => tool(bin, 'pg_ctl', ['-D', data, ...args]);
  const start = async () => {
    await pgCtl(['-l', log, '-w', '-t', '30', 'start']);
  };
  const urlOf = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;

  const destroy = async () => {
    if (destroyed) return;
    try {
      await pgCtl(['-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    } finally {
      destroyed = true;
      process.removeListener('exit', stopNow);
      if (watchdog.pid !== undefined && watchdog.exitCode === null) watchdog.kill('SIGKILL');
    }
  };

  try {
    await tool(bin, 'initdb', [
      '-D',
      data,
      '-A',
      'trust',
      '-U',
      'postgres',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
      '--no-instructions',
    ]);
    await appendFile(
      join(data, 'postgresql.conf'),
      [
        `port = ${port}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${root}'`,
        'fsync = off',
        'synchronous_commit = off',
        'full_page_writes = off',
        'shared_buffers = 16MB',
        'max_connections = 40',
        '',
      ].join('\n'),
    );
    await start();
  } catch (error) {
    await destroy();
    throw error;
  }

  return {
    port,
    urlOf,
    stop: async (mode) => {
      await pgCtl(['-m', mode, '-w', '-t', '30', 'stop']);
    },
    start,
    createDatabase: async (name) => {
      const admin = new pg.Client({ connectionString: urlOf('postgres') });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE "${name}"`);
      } finally {
        await admin.end();
      }
      const url = urlOf(name);
      const database = await createDatabase({
        databaseUrl: url,
        dataDir: '',
        db: { poolMax: 2, connectTimeoutMs: 5000, statementTimeoutMs: 30_000 },
      });
      try {
        await database.migrate();
      } finally {
        await database.close();
      }
      return url;
    },
    destroy,
  };
}

function postgresIds(): [number, number] {
  const result = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const group = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  const uid = Number(result.stdout.trim());
  const gid = Number(group.stdout.trim());
  if (result.status !== 0 || !Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error(
      `running as ${userInfo().username}, and there is no postgres user to run initdb`,
    );
  }
  return [uid, gid];
}

/**
 * Whether the tests that need a cluster of their own must be skipped: the PostgreSQL server
 * binaries are not installed (a developer on the embedded database). In CI they never are.
 */
export function skipWithoutPostgres(file: string): boolean {
  const skip = postgresBinaries() === undefined && !process.env.CI;
  if (skip) {
    console.warn(
      `${file} skipped: no initdb and pg_ctl on PATH or in /usr/lib/postgresql/<version>/bin (apt-get install postgresql)`,
    );
  }
  return skip;
}
