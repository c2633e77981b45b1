import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';

/**
 * Who owns an embedded database folder, and how the others find it.
 *
 * The owner runs PostgreSQL on the folder, listening only on a Unix socket inside it
 * (`psql -h <folder>` finds it), and writes a small file beside it saying who it is.
 */

export const SOCKET_PORT = 5432;
const SOCKET_NAME = `.s.PGSQL.${SOCKET_PORT}`;
/** Who owns the folder (PostgreSQL's own `.s.PGSQL.5432.lock` names only the postmaster). */
const INFO_NAME = 'owner.json';
const TAKEOVER_NAME = 'owner.lock';

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

/**
 * The right to become the folder's owner: to stop a PostgreSQL left running by an owner
 * that died, and to start one. PostgreSQL's postmaster.pid keeps a second postmaster off
 * the folder, but it cannot tell an orphaned server from a live owner's, nor keep two
 * processes from each initialising a new folder: that takes a lock of the owner's own.
 */
export interface FolderLock {
  /** PostgreSQL answers: the lock is needed no longer where it cannot be kept. */
  serving(): Promise<void>;
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
 * Elsewhere (macOS, the BSDs) there is no such socket: the lock is a directory made in the
 * folder (mkdir is atomic) and removed as soon as PostgreSQL answers; from then on the
 * owner's file, naming a live process, keeps other processes out. Only a process killed
 * in between leaves the directory behind; it is taken as abandoned after 10 seconds.
 */
export async function tryLockFolder(dir: string, realDir: string): Promise<FolderLock | null> {
  if (process.platform === 'linux') {
    const name = `\0contract-first-api/embedded/${createHash('sha256').update(realDir).digest('hex')}`;
    const server = await listenOrBusy(name);
    if (!server) return null;
    // The lock must not keep an otherwise finished process alive.
    server.unref();
    return {
      serving: async () => undefined,
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
  return { serving: unlock, release: unlock };
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

/**
 * Whether a process with this pid runs (EPERM: it does, as another user). A zombie, dead
 * but not yet reaped by its parent (in a container whose first process reaps nothing), does
 * not.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (process.platform !== 'linux') return true;
  try {
    // /proc/<pid>/stat: "pid (command) state …"; the command may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
