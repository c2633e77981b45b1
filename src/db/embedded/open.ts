import { spawn } from 'node:child_process';
import { access, mkdir, readdir, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { EngineSettings, FromEngine, ToEngine } from './engine-worker.js';
import {
  isOwnFile,
  probeOwner,
  readOwnerInfo,
  removeOwnerInfo,
  removeStaleSocket,
  SOCKET_PORT,
  socketPathOf,
  tryLockFolder,
  writeOwnerInfo,
  type FolderLock,
  type OwnerInfo,
} from './folder.js';

/**
 * One process at a time opens an embedded database folder: two PGlite instances on one
 * folder corrupt it without a word. The first process to claim the folder becomes its
 * owner and serves it on a socket inside it; every other process (scripts, psql, Drizzle
 * Studio) is a client of that socket, and sees every write the moment it is committed.
 * The owner's own app is a client too, through node-postgres: PGlite is a single session,
 * and only the socket keeps one client's transaction apart from another's statements.
 */

export interface EmbeddedOptions {
  /** What this process is, for the message other processes get: "the API server". */
  label: string;
  /** Refuse to run when another process owns the folder (the server), instead of using it. */
  exclusive: boolean;
  /** The size of each process's pool: the owner admits four pools (its own and a few scripts'). */
  poolMax: number;
  /** How long a client waits for an owner that is still starting up. */
  waitMs?: number;
  /** Problems of the engine that no caller is waiting for. */
  onError?: (message: string) => void;
}

export interface EmbeddedAccess {
  readonly role: 'owner' | 'client';
  /** The folder, which is node-postgres' and psql's `host`. */
  readonly host: string;
  readonly port: number;
  /** Who serves the folder, when this process is a client. */
  readonly owner: OwnerInfo | null;
  /** Resolves once the database answers queries. */
  readonly ready: Promise<void>;
  /** The owner stops serving (ending its clients' connections) and gives the folder up. */
  close(): Promise<void>;
}

/** Another process owns the folder, and this one may not share it. */
export class EmbeddedInUseError extends Error {
  override name = 'EmbeddedInUseError';
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
  await mkdir(dir, { recursive: true });
  const realDir = await realpath(dir);
  const deadline = Date.now() + (options.waitMs ?? 60_000);
  for (;;) {
    if ((await probeOwner(dir)) === 'live') {
      const owner = await readOwnerInfo(dir);
      if (options.exclusive) throw inUse(dir, owner);
      return asClient(dir, owner, deadline);
    }
    const lock = await tryLockFolder(dir, realDir);
    if (lock) {
      // An owner may have finished starting between the probe and the lock (not on Linux,
      // where owners hold the lock for life, but it costs nothing when there is no socket).
      if ((await probeOwner(dir)) === 'live') {
        await lock.release();
        continue;
      }
      return startOwner(dir, lock, options);
    }
    // Another process is taking the folder right now.
    if (options.exclusive) throw inUse(dir, await readOwnerInfo(dir));
    if (Date.now() > deadline) {
      throw new Error(`Gave up waiting for the process that is opening ${dir}.`);
    }
    await sleep(100);
  }
}

function asClient(dir: string, owner: OwnerInfo | null, deadline: number): EmbeddedAccess {
  return {
    role: 'client',
    host: dir,
    port: SOCKET_PORT,
    owner,
    ready: untilServing(dir, deadline),
    close: async () => undefined,
  };
}

/** An owner that is still opening the database answers like PostgreSQL starting up: wait. */
async function untilServing(dir: string, deadline: number): Promise<void> {
  const { default: pg } = await import('pg');
  for (;;) {
    const client = new pg.Client({ host: dir, port: SOCKET_PORT, user: 'postgres' });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (error) {
      if ((error as { code?: unknown }).code !== '57P03' || Date.now() > deadline) throw error;
    }
    await sleep(100);
  }
}

/** A module beside this one, as .ts under tsx and as .js once compiled. */
function sibling(name: string): URL {
  return new URL(`./${name}${extname(fileURLToPath(import.meta.url))}`, import.meta.url);
}

/**
 * From source (tsx, vitest) the worker's module is TypeScript, and on Node 20 a worker
 * thread does not inherit tsx's loader: it registers tsx itself before importing it.
 */
function startWorker(file: URL, workerData: EngineSettings): Worker {
  if (!file.pathname.endsWith('.ts')) return new Worker(file, { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(file.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

async function startOwner(
  dir: string,
  lock: FolderLock,
  options: EmbeddedOptions,
): Promise<EmbeddedAccess> {
  const initdb = new AbortController();
  let worker: Worker | undefined;
  try {
    await writeOwnerInfo(dir, {
      pid: process.pid,
      since: new Date().toISOString(),
      owner: options.label,
      command: process.argv.slice(1).join(' '),
    });
    await removeStaleSocket(dir);
    const initialising = (await exists(join(dir, 'PG_VERSION')))
      ? null
      : initialiseFolder(dir, initdb.signal);

    const settings: EngineSettings = {
      dataDir: dir,
      socketPath: socketPathOf(dir),
      maxConnections: options.poolMax * 4,
      initdbPending: initialising !== null,
    };
    worker = startWorker(sibling('engine-worker'), settings);
    const engine = worker;
    const tell = (message: ToEngine) => engine.postMessage(message);
    initialising?.then(
      () => tell({ type: 'initdb-done' }),
      (error: unknown) => tell({ type: 'initdb-failed', message: String(error) }),
    );

    let closing = false;
    const exited = new Promise<void>((resolve) => engine.once('exit', () => resolve()));
    const listening = deferred();
    const ready = deferred();
    const fail = (error: Error) => {
      listening.reject(error);
      ready.reject(error);
    };
    engine.on('message', (message: FromEngine) => {
      if (message.type === 'listening') listening.resolve();
      else if (message.type === 'ready') ready.resolve();
      else if (message.type === 'failed') fail(new Error(message.message));
      else if (message.type === 'error') options.onError?.(message.message);
    });
    engine.on('error', fail);
    engine.on('exit', (code) => {
      const error = new Error(`the embedded database engine stopped (exit code ${code})`);
      fail(error);
      if (!closing) options.onError?.(error.message);
    });
    // Handled by whoever awaits `ready`; this only keeps an early failure from being unhandled.
    ready.promise.catch(() => undefined);

    // Where the lock is only held until the socket is bound, it is let go as soon as it is.
    listening.promise.then(() => lock.socketBound()).catch(() => undefined);

    return {
      role: 'owner',
      host: dir,
      port: SOCKET_PORT,
      owner: null,
      ready: ready.promise,
      close: async () => {
        if (closing) return;
        closing = true;
        initdb.abort();
        tell({ type: 'close' });
        const timeout = setTimeout(() => void engine.terminate(), 10_000);
        await exited;
        clearTimeout(timeout);
        await removeStaleSocket(dir);
        await removeOwnerInfo(dir);
        await lock.release();
      },
    };
  } catch (error) {
    initdb.abort();
    await worker?.terminate();
    await removeOwnerInfo(dir);
    await lock.release();
    throw error;
  }
}

/** Promise.withResolvers, which Node 20 lacks. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * The flags of this process that say how to load modules (tsx's loader when running from
 * source); not the others: `-e code` would run that code instead, and an inspector would
 * fight this one for its port.
 */
function loaderFlags(): string[] {
  const withValue = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader']);
  const flags: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const name = flag.split('=')[0]!;
    if (!withValue.has(name)) continue;
    flags.push(flag);
    if (!flag.includes('=') && i + 1 < argv.length) flags.push(argv[++i]!);
  }
  return flags;
}

/**
 * initdb runs in a process of its own (see initdb-process.ts) and builds the database in a
 * folder beside the final one; the files are then moved in with PG_VERSION last, which is
 * what PGlite looks for, so an interrupted start never leaves a half-made database.
 */
async function initialiseFolder(dir: string, signal: AbortSignal): Promise<void> {
  // Named after this process: the initdb of an owner killed while it ran may still be
  // writing into its own folder, which is removed with the other leftovers.
  const staging = join(dir, `.initdb.${process.pid}`);
  const moving = join(dir, '.initdb.moving');
  const leftovers = await readdir(dir);
  if (leftovers.includes('.initdb.moving')) {
    // A move was interrupted: what is in the folder came from it, and is incomplete.
    for (const name of leftovers) {
      if (!isOwnFile(name)) await rm(join(dir, name), { recursive: true, force: true });
    }
  }
  for (const name of leftovers) {
    // The initdb process of a killed owner may still be writing there for a moment (it
    // outlives its parent): removal is retried until it has stopped or failed.
    if (/^\.initdb\.\d+$/.test(name)) {
      await rm(join(dir, name), { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
    }
  }

  const child = spawn(
    process.execPath,
    // V8's optimising compiler earns nothing in a process this short, and took a core
    // from it: initdb measured 0.5 s faster with the baseline compiler only.
    [...loaderFlags(), '--liftoff-only', fileURLToPath(sibling('initdb-process')), staging],
    { stdio: ['ignore', 'ignore', 'pipe'], signal },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  if (code !== 0) throw new Error(`initdb failed (exit code ${code}): ${stderr.trim()}`);

  await writeFile(moving, '');
  const names = (await readdir(staging)).filter((name) => name !== 'PG_VERSION');
  for (const name of [...names, 'PG_VERSION']) {
    await rename(join(staging, name), join(dir, name));
  }
  await rm(moving);
  await rm(staging, { recursive: true, force: true });
}
