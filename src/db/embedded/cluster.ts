import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { open as openFile, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Binaries } from './binaries.js';
import { SOCKET_PORT } from './folder.js';
import type { ServerUser } from './server-user.js';

/**
 * The cluster on disk and the server process: how initdb makes it, the settings the server
 * runs with, and its log. Who may start it, and when, is open.ts's business.
 */

const CLUSTER = 'postgres';
const LOG = 'postgresql.log';

export function clusterOf(dir: string): string {
  return join(dir, CLUSTER);
}

export interface StartedServer {
  readonly child: ChildProcess;
  /** Where this server's lines begin in the log (see lastWordsOf). */
  readonly logFrom: number;
}

/** Starts PostgreSQL on the folder's cluster, its output appended to the folder's log. */
export async function spawnServer(
  dir: string,
  binaries: Binaries,
  poolMax: number,
  user: ServerUser | null,
): Promise<StartedServer> {
  await rotateLog(dir);
  const log = await openFile(join(dir, LOG), 'a', 0o600);
  try {
    const logFrom = (await log.stat()).size;
    const child = spawn(binaries.postgres, serverArguments(dir, poolMax), {
      // Not in this process's group: Ctrl-C in a terminal reaches the server, which
      // finishes its requests before it stops the database (close()).
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
      env: { ...process.env, LC_ALL: 'C', LC_MESSAGES: 'C' },
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
    });
    return { child, logFrom };
  } finally {
    await log.close();
  }
}

function serverArguments(dir: string, poolMax: number): string[] {
  const settings: Record<string, string> = {
    // The socket only: no TCP port to collide with another PostgreSQL, and only this
    // user (and root) may connect.
    listen_addresses: '',
    // A list: a folder with spaces or commas in its name is quoted.
    unix_socket_directories: `"${dir.replaceAll('"', '""')}"`,
    unix_socket_permissions: '0700',
    port: String(SOCKET_PORT),
    // The server's pools (four, while scripts share it), psql, Studio.
    max_connections: String(poolMax * 4 + 10),
    // A development database: small, and measured at about 45 MB for all its processes.
    shared_buffers: '16MB',
    huge_pages: 'off',
    // One process per I/O instead of PostgreSQL 18's three I/O workers, which a
    // development database does not keep busy.
    io_method: 'sync',
    // No logical replication (subscriptions): its launcher is a process fewer, about 8 MB
    // resident (measured on a new folder: 9 PostgreSQL processes at rest instead of 10).
    max_logical_replication_workers: '0',
    max_wal_size: '256MB',
    min_wal_size: '32MB',
    TimeZone: 'UTC',
  };
  return [
    '-D',
    clusterOf(dir),
    ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
  ];
}

/**
 * initdb writes the cluster into a folder of its own beside the final one, which is
 * renamed into place once complete: an interrupted start never leaves a half-made cluster.
 */
export async function initialise(dir: string, binaries: Binaries, user: ServerUser | null) {
  for (const name of await readdir(dir)) {
    // What an owner killed during initdb left (its initdb may still be ending).
    if (/^\.initdb\.\d+$/.test(name)) {
      await rm(join(dir, name), { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
    }
  }
  const staging = join(dir, `.initdb.${process.pid}`);
  const initdb = spawn(
    binaries.initdb,
    [
      `--pgdata=${staging}`,
      '--username=postgres',
      // Only this user (and root) can open the folder's socket: see unix_socket_permissions.
      '--auth=trust',
      '--encoding=UTF8',
      // Unicode-aware case mapping and a stable code-point order, whatever locales the
      // machine has (PostgreSQL's own provider, new in 17).
      '--locale-provider=builtin',
      '--builtin-locale=C.UTF-8',
      '--locale=C',
      '--no-instructions',
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
    },
  );
  let stderr = '';
  initdb.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(initdb, 'exit')) as [number | null];
  if (code !== 0) {
    await rm(staging, { recursive: true, force: true });
    throw new Error(`initdb failed (exit code ${code}): ${stderr.trim()}`);
  }
  await rename(staging, clusterOf(dir));
}

/** PostgreSQL's log is kept under about 10 MB: a larger one becomes postgresql.log.1. */
async function rotateLog(dir: string): Promise<void> {
  const log = join(dir, LOG);
  const size = (await stat(log).catch(() => null))?.size ?? 0;
  if (size > 10 * 1024 * 1024) await rename(log, `${log}.1`);
}

/** What PostgreSQL logged since `from` that says why it stopped (its FATAL and PANIC lines). */
export async function lastWordsOf(dir: string, from: number): Promise<string> {
  const text = await readFile(join(dir, LOG), 'utf8').catch(() => '');
  const lines = text.slice(from).split('\n');
  const fatal = lines.filter((line) => /\b(FATAL|PANIC|ERROR):/.test(line));
  return (
    (fatal.length > 0 ? fatal : lines.filter(Boolean).slice(-3)).join(' / ') ||
    `see ${join(dir, LOG)}`
  );
}
