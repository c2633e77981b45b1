import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { projectRoot } from '../../paths.js';

/**
 * A new embedded data folder starts as a copy of one made by initdb once per install, not
 * by an initdb of its own: loading the copy takes about 0.8 s, initdb 2.4 s or more. The
 * copy belongs to the installed PGlite (its PostgreSQL build), so it is named after its
 * version and kept with the installed packages, where `npm ci` starts afresh.
 */
function installedPgliteVersion(): string {
  // Its package.json is not among the files it exports: found from its entry point up.
  let dir = dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite'));
  for (;;) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (manifest.name === '@electric-sql/pglite' && manifest.version) return manifest.version;
    } catch {
      // no package.json at this level
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the version of @electric-sql/pglite');
    dir = parent;
  }
}

export const templatePath = join(
  projectRoot,
  'node_modules',
  '.cache',
  'contract-first-api',
  `pglite-${installedPgliteVersion()}.tar.gz`,
);

/** The template, or null when none was made yet (or it cannot be read). */
export async function readTemplate(): Promise<Blob | null> {
  try {
    return new Blob([await readFile(templatePath)]);
  } catch {
    return null;
  }
}

/** Keeps a dump (PGlite's dumpDataDir) of a new, empty cluster as the template. */
export async function writeTemplate(dump: Blob): Promise<void> {
  await mkdir(dirname(templatePath), { recursive: true });
  // Renamed into place, so that a process starting meanwhile never loads half a file.
  const temporary = `${templatePath}.${process.pid}.tmp`;
  await writeFile(temporary, Buffer.from(await dump.arrayBuffer()));
  await rename(temporary, templatePath);
}
