import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Who owns an embedded database folder, and how the others find it.
 *
 * The owner serves the folder on a Unix socket inside it, named as PostgreSQL names its
 * own (`psql -h <folder>` finds it), with a small file beside it saying who the owner is.
 * The socket is also what tells the others that the owner is alive: a socket file whose
 * process died stays behind but refuses connections.
 */

export const SOCKET_PORT = 5432;
const SOCKET_NAME = `.s.PGSQL.${SOCKET_PORT}`;
/** Where PostgreSQL keeps its socket's lock file, holding the owner's pid as PostgreSQL's does. */
const INFO_NAME = `${SOCKET_NAME}.lock`;
const TAKEOVER_NAME = `${SOCKET_NAME}.takeover`;

/** sun_path holds 108 bytes on Linux and 104 on macOS, and Node cuts longer paths silently. */
const MAX_SOCKET_PATH_BYTES = 103;

export interface OwnerInfo {
  pid: number;
  /** When it took the folder (ISO 8601). */
  since: string;
  /** What it is, in words: "the API server", "npm run db:seed". */
  owner: string;
  command: string;
}

export function socketPathOf(dir: string): string {
  const path = join(dir, SOCKET_NAME);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(
      `DATA_DIR is too long to hold a Unix socket (${path} is over ${MAX_SOCKET_PATH_BYTES} bytes): use a shorter path.`,
    );
  }
  return path;
}

/** Our own files in the folder, which PostgreSQL's files never are. */
export function isOwnFile(name: string): boolean {
  return name.startsWith(SOCKET_NAME) || name.startsWith('.initdb');
}

function connects(path: string): Promise<'yes' | 'refused' | 'absent'> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve('yes');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') resolve('absent');
      else if (error.code === 'ECONNREFUSED') resolve('refused');
      else reject(error);
    });
  });
}

/**
 * 'live' when a process accepts connections on the folder's socket. A socket file nobody
 * listens on is stale only if it keeps refusing for a while: a listener can refuse for an
 * instant (a full backlog), a dead one refuses for good.
 */
export async function probeOwner(dir: string): Promise<'live' | 'none'> {
  const path = socketPathOf(dir);
  for (let attempt = 0; ; attempt++) {
    const result = await connects(path);
    if (result === 'yes') return 'live';
    if (result === 'absent' || attempt === 3) return 'none';
    await sleep(50);
  }
}

export async function readOwnerInfo(dir: string): Promise<OwnerInfo | null> {
  try {
    return JSON.parse(await readFile(join(dir, INFO_NAME), 'utf8')) as OwnerInfo;
  } catch {
    return null;
  }
}

export async function writeOwnerInfo(dir: string, info: OwnerInfo): Promise<void> {
  // Written whole and renamed into place, so that a reader never sees half of it.
  const temporary = join(dir, `${INFO_NAME}.${process.pid}`);
  await writeFile(temporary, `${JSON.stringify(info)}\n`);
  await rename(temporary, join(dir, INFO_NAME));
}

export async function removeOwnerInfo(dir: string): Promise<void> {
  await rm(join(dir, INFO_NAME), { force: true });
}

/** Removes a socket file left by a dead owner; call it only while holding the folder's lock. */
export async function removeStaleSocket(dir: string): Promise<void> {
  await rm(socketPathOf(dir), { force: true });
}

/**
 * The right to become the folder's owner: to remove a stale socket and serve a new one.
 * Binding the socket is itself atomic (a second bind fails), but replacing a stale socket
 * file is not (two processes could each remove the other's new socket), so that step
 * needs a lock of its own.
 */
export interface FolderLock {
  /** The owner's socket is listening: the lock is needed no longer where it cannot be kept. */
  socketBound(): Promise<void>;
  release(): Promise<void>;
}

/**
 * Takes the lock, or answers null when another process holds it.
 *
 * On Linux it is a socket in the abstract namespace, named after the folder's real path:
 * binding it is atomic, and the kernel releases it when the process dies, however it
 * dies; it is held for the owner's whole life. (Its namespace is the network namespace:
 * containers that share a folder but not a network are not kept apart by it.)
 *
 * Elsewhere (macOS, the BSDs) there is no such socket: the lock is a directory made next
 * to the socket (mkdir is atomic) and removed as soon as the new socket is bound; from
 * then on the bound socket keeps other processes out. Only a process killed in those few
 * milliseconds leaves the directory behind; it is taken as abandoned after 10 seconds.
 */
export async function tryLockFolder(dir: string, realDir: string): Promise<FolderLock | null> {
  if (process.platform === 'linux') {
    const name = `\0contract-first-api/embedded/${createHash('sha256').update(realDir).digest('hex')}`;
    const server = await listenOrBusy(name);
    if (!server) return null;
    // The lock must not keep an otherwise finished process alive.
    server.unref();
    return {
      socketBound: async () => undefined,
      release: () => new Promise((resolve) => server.close(() => resolve())),
    };
  }

  const marker = join(dir, TAKEOVER_NAME);
  try {
    await mkdir(marker);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const age = Date.now() - (await stat(marker)).mtimeMs;
    if (age < 10_000) return null;
    await rm(marker, { recursive: true, force: true });
    return tryLockFolder(dir, realDir);
  }
  let held = true;
  const unlock = async () => {
    if (!held) return;
    held = false;
    await rm(marker, { recursive: true, force: true });
  };
  return { socketBound: unlock, release: unlock };
}

function listenOrBusy(name: string): Promise<Server | null> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.destroy());
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') resolve(null);
      else reject(error);
    });
    server.listen(name, () => resolve(server));
  });
}
