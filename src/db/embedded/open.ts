import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { access, chown, mkdir, readFile, realpath } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findBinaries, type Binaries } from './binaries.js';
import { clusterOf, initialise, lastWordsOf, spawnServer } from './cluster.js';
import {
  isAlive,
  readOwnerInfo,
  removeOwnerInfo,
  SOCKET_PORT,
  socketPathOf,
  tryLockFolder,
  writeOwnerInfo,
  type FolderLock,
  type OwnerInfo,
} from './folder.js';
import { serverUser, unreachableBy, type ServerUser } from './server-user.js';

/**
 * The embedded database is a real PostgreSQL server (see binaries.ts) on a folder
 * (DATA_DIR), run by the process that owns the folder: the API server, or a script when no
 * server runs. It listens only on a Unix socket inside the folder, so every other process
 * (scripts, psql, Drizzle Studio) connects to it as to any PostgreSQL server, each with
 * sessions of its own: one client's transaction, settings or prepared statements never
 * reach another's, and statement_timeout and cancel work.
 *
 * DATA_DIR/
 *   postgres/          the cluster (PGDATA), made by initdb on the first start
 *   .s.PGSQL.5432      the socket (`psql -h DATA_DIR -U postgres`), and PostgreSQL's lock file
 *   owner.json         which process owns the folder
 *   postgresql.log     the server's log
 */

export interface EmbeddedOptions {
  /** What this process is, for the message other processes get: "the API server". */
  label: string;
  /** Refuse to run when another process owns the folder (the server), instead of using it. */
  exclusive: boolean;
  /** The size of each process's pool: the server admits four pools and a few more sessions. */
  poolMax: number;
  /** How long a client waits for an owner that is still starting up. */
  waitMs?: number;
  /** Problems of the database that no caller is waiting for (it stopped on its own). */
  onError?: (message: string) => void;
}

export interface EmbeddedAccess {
  readonly role: 'owner' | 'client';
  /** The folder, which is node-postgres' and psql's `host` (the socket's directory). */
  readonly host: string;
  readonly port: number;
  /** Who serves the folder, when this process is a client. */
  readonly owner: OwnerInfo | null;
  /** Resolves once the database answers queries. */
  readonly ready: Promise<void>;
  /** The owner stops PostgreSQL (a fast shutdown: sessions are ended) and gives the folder up. */
  close(): Promise<void>;
}

/** Another process owns the folder, and this one may not share it. */
export class EmbeddedInUseError extends Error {
  override name = 'EmbeddedInUseError';
}

/** The folder holds something this version cannot open: what to do is in the message. */
export class EmbeddedFolderError extends Error {
  override name = 'EmbeddedFolderError';
}

function inUse(dir: string, owner: OwnerInfo | null): EmbeddedInUseError {
  const who = owner
    ? `process ${owner.pid} (${owner.owner}: ${owner.command}) since ${owner.since}`
    : 'another process';
  return new EmbeddedInUseError(
    `The embedded database in ${dir} is in use by ${who}.\n` +
      'Only one server may run on it (scripts such as npm run db:seed share it with the server). ' +
      'Stop that process, use another DATA_DIR, or set DATABASE_URL to use a PostgreSQL server.',
  );
}

export async function openEmbedded(dir: string, options: EmbeddedOptions): Promise<EmbeddedAccess> {
  const binaries = await findBinaries();
  socketPathOf(dir); // refuses a path too long for a socket, before anything is made
  await mkdir(dirname(dir), { recursive: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await refuseEarlierFolder(dir);
  const realDir = await realpath(dir);
  const deadline = Date.now() + (options.waitMs ?? 60_000);
  for (;;) {
    const lock = await tryLockFolder(dir, realDir);
    const owner = await readOwnerInfo(dir);
    // Where the lock is held only while an owner starts (not Linux), a live owner is known
    // by its file.
    const liveOwner = owner !== null && owner.pid !== process.pid && isAlive(owner.pid);
    if (lock && !(liveOwner && process.platform !== 'linux')) {
      return startOwner(dir, lock, binaries, options);
    }
    await lock?.release();
    if (options.exclusive) throw inUse(dir, owner);
    if (owner || Date.now() > deadline) return asClient(dir, owner, deadline);
    // Another process is taking the folder right now: its file comes first.
    await sleep(50);
  }
}

/**
 * A folder of the earlier embedded database (PGlite, PostgreSQL compiled to WebAssembly)
 * holds its cluster's files at the top (PG_VERSION, base/, …). PostgreSQL cannot open them
 * (another build: different alignment and catalog), so they are copied over by a script.
 */
async function refuseEarlierFolder(dir: string): Promise<void> {
  const earlier = await exists(join(dir, 'PG_VERSION'));
  if (!earlier || (await exists(join(clusterOf(dir), 'PG_VERSION')))) return;
  throw new EmbeddedFolderError(
    `${dir} holds a database of the earlier embedded engine (PGlite), which PostgreSQL cannot open.\n` +
      `Bring its data over with: npm run db:import-pglite -- ${dir}\n` +
      '(it moves the old files aside, into pglite-backup/ in that folder, and copies every row into a new embedded PostgreSQL there), ' +
      'or use another DATA_DIR to start empty.',
  );
}

function asClient(dir: string, owner: OwnerInfo | null, deadline: number): EmbeddedAccess {
  return {
    role: 'client',
    host: dir,
    port: SOCKET_PORT,
    owner,
    ready: untilServing(dir, deadline, () => null),
    close: async () => undefined,
  };
}

/**
 * Resolves once a session opens on the folder's socket. PostgreSQL answers 57P03 while it
 * starts or recovers; the socket is absent or refuses before that.
 */
async function untilServing(
  dir: string,
  deadline: number,
  stopped: () => Promise<Error> | null,
): Promise<void> {
  const { default: pg } = await import('pg');
  for (;;) {
    const client = new pg.Client({ host: dir, port: SOCKET_PORT, user: 'postgres' });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.end();
      return;
    } catch (error) {
      const failure = stopped();
      if (failure) throw await failure;
      const code = (error as { code?: unknown }).code;
      const starting = code === '57P03' || code === 'ENOENT' || code === 'ECONNREFUSED';
      if (!starting || Date.now() > deadline) throw error;
    }
    await sleep(15);
  }
}

async function startOwner(
  dir: string,
  lock: FolderLock,
  binaries: Binaries,
  options: EmbeddedOptions,
): Promise<EmbeddedAccess> {
  const cluster = clusterOf(dir);
  let child: ChildProcess | undefined;
  let closing = false;
  let exited: Promise<void> = Promise.resolve();
  let failure: Promise<Error> | null = null;
  // A process that ends without close() (process.exit after an error) stops its database
  // too; the signal is all that can be sent from an exit handler.
  const stopOnExit = () => child?.kill('SIGINT');

  const start = async (): Promise<void> => {
    await writeOwnerInfo(dir, {
      pid: process.pid,
      since: new Date().toISOString(),
      owner: options.label,
      command: process.argv.slice(1).join(' '),
    });
    const user = await serverUser(cluster);
    if (user) await giveFolder(dir, user, binaries);
    await stopOrphan(dir, binaries, user);
    if (!(await exists(join(cluster, 'PG_VERSION')))) await initialise(dir, binaries, user);

    const started = await spawnServer(dir, binaries, options.poolMax, user);
    const server = started.child;
    child = server;
    exited = once(server, 'exit').then(() => undefined);
    process.on('exit', stopOnExit);
    server.once('exit', (code, signal) => {
      process.off('exit', stopOnExit);
      const how = signal ?? `exit code ${code}`;
      failure = lastWordsOf(dir, started.logFrom).then(
        (words) => new Error(`the embedded PostgreSQL stopped (${how}): ${words}`),
      );
      if (!closing) void failure.then((error) => options.onError?.(error.message));
    });
    await untilServing(dir, Date.now() + 120_000, () => failure);
    await lock.serving();
  };

  const ready = start();
  // Handled by whoever awaits `ready`; this only keeps an early failure from being unhandled.
  ready.catch(() => undefined);

  return {
    role: 'owner',
    host: dir,
    port: SOCKET_PORT,
    owner: null,
    ready,
    close: async () => {
      if (closing) return;
      closing = true;
      await ready.catch(() => undefined);
      if (child && child.exitCode === null && child.signalCode === null) {
        // A fast shutdown: sessions are ended, a checkpoint is written. An immediate one
        // (SIGQUIT: recovery at the next start) only if that takes longer than it should.
        child.kill('SIGINT');
        const immediate = setTimeout(() => child?.kill('SIGQUIT'), 30_000);
        await exited;
        clearTimeout(immediate);
      }
      process.off('exit', stopOnExit);
      await removeOwnerInfo(dir);
      await lock.release();
    },
  };
}

/**
 * The folder, made by this process, becomes the database user's: PostgreSQL writes its
 * cluster, socket and log there. First, every folder on the way must let that user in.
 */
async function giveFolder(dir: string, user: ServerUser, binaries: Binaries): Promise<void> {
  for (const path of [dirname(dir), binaries.postgres]) {
    const blocked = await unreachableBy(user, path);
    if (blocked) {
      throw new EmbeddedFolderError(
        `PostgreSQL cannot run as root, so the embedded database runs as the user ${user.name}, which may not enter ${blocked} (on the way to ${path}). ` +
          'Run the server as a normal user, move the project or DATA_DIR where that user can reach it, or set DATABASE_URL.',
      );
    }
  }
  await chown(dir, user.uid, user.gid);
}

/**
 * A server whose owner was killed (SIGKILL, a crash) keeps running: PostgreSQL does not
 * follow its parent. Holding the folder's lock proves that owner is gone, so its server is
 * stopped (pg_ctl reads postmaster.pid) before this process starts its own.
 */
async function stopOrphan(dir: string, binaries: Binaries, user: ServerUser | null) {
  const pidFile = join(clusterOf(dir), 'postmaster.pid');
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
  if (!(await isPostgres(pid))) return; // a reused pid: PostgreSQL sees the file is stale
  const stop = spawn(
    binaries.pgCtl,
    ['stop', '-D', clusterOf(dir), '-m', 'fast', '-w', '-t', '60'],
    { stdio: ['ignore', 'ignore', 'pipe'], ...(user ? { uid: user.uid, gid: user.gid } : {}) },
  );
  let stderr = '';
  stop.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(stop, 'exit')) as [number | null];
  if (code !== 0 && isAlive(pid)) {
    throw new EmbeddedFolderError(
      `The PostgreSQL server (process ${pid}) left running on ${dir} by an earlier owner would not stop: ${stderr.trim()}`,
    );
  }
}

async function isPostgres(pid: number): Promise<boolean> {
  if (process.platform !== 'linux') return true;
  const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => null);
  return command === null || command.includes('postgres');
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
