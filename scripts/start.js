// @ts-check
/**
 * npm start: runs the server (npm run worker: the job workers) from src/ with no build step, and without a TypeScript loader
 * in the running process (tsx cost 0.5 s and 80 MB on every start). After `npm ci`, npm
 * runs it with `--prepare`, which transpiles and stops there, so the first start is as
 * quick as the next.
 *
 * Each source file is transpiled by esbuild (types stripped, not checked: `npm run check`
 * does that) into .start/, laid out as src/ is, one folder below the project root, so that
 * paths.ts and the `new URL('./worker' + extname(...))` pattern resolve as they do from
 * src/ and dist/. A start compares the sources' sizes and times with the last build's (a
 * few milliseconds) and transpiles only what changed. Files are replaced by renaming, so
 * processes starting at the same time never read half a file.
 *
 * package.json runs it with --max-semi-space-size=16, the young-generation size Node 20 and
 * 22 use: Node 24's larger default added about 110 MB of resident memory to the server.
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import * as nodeModule from 'node:module';
import { dirname, join, relative } from 'node:path';
import process from 'node:process';
import { fileURLToPath, pathToFileURL, URL } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const sourceDir = join(root, 'src');
const outDir = join(root, '.start');
const manifestPath = join(outDir, 'manifest.json');
/** Changes whenever the way files are transpiled changes, so that old output is redone. */
const BUILD_VERSION = 2;

/**
 * @param {string} dir
 * @returns {Promise<string[]>} the TypeScript sources under dir, relative to src/
 */
async function sources(dir) {
  const found = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await sources(path)));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      found.push(relative(sourceDir, path));
    }
  }
  return found;
}

/** @typedef {{ version: number, files: Record<string, string> }} Manifest */

/**
 * @param {unknown} value
 * @returns {value is Manifest}
 */
const isManifest = (value) =>
  typeof value === 'object' && value !== null && 'version' in value && 'files' in value;

/** @returns {Promise<Manifest>} */
async function readManifest() {
  try {
    /** @type {unknown} */
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
    if (isManifest(manifest)) return manifest;
  } catch {
    // none yet, or unreadable: build everything
  }
  return { version: 0, files: {} };
}

/**
 * @param {string} path
 * @param {string | Uint8Array} contents
 */
async function replaceFile(path, contents) {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, contents);
  await rename(temporary, path);
}

const outputOf = (/** @type {string} */ file) => join(outDir, file.replace(/\.ts$/, '.js'));

async function build() {
  const files = await sources(sourceDir);
  /** @type {Record<string, string>} */
  const stamps = {};
  await Promise.all(
    files.map(async (file) => {
      const info = await stat(join(sourceDir, file));
      stamps[file] = `${info.size}:${info.mtimeMs}`;
    }),
  );
  const previous = await readManifest();
  const fresh = previous.version === BUILD_VERSION;
  const built = await Promise.all(
    files.map((file) => stat(outputOf(file)).then(Boolean, () => false)),
  );
  const changed = files.filter(
    (file, i) => !fresh || previous.files[file] !== stamps[file] || !built[i],
  );
  const removed = Object.keys(previous.files).filter((file) => !(file in stamps));
  if (changed.length === 0 && removed.length === 0) return;

  // esbuild is a development dependency: a checkout for development has it, and a
  // production image runs the tsc build (node dist/server.js) instead.
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: changed.map((file) => join(sourceDir, file)),
    outdir: outDir,
    outbase: sourceDir,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // Read by debuggers, and by Node with --enable-source-maps (off by default: enabling
    // it had Node parse every dependency's maps too, 40 ms on every start).
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'silent',
    write: false,
  });
  // esbuild answers from a service process of its own, which would otherwise stay.
  await esbuild.stop();
  await Promise.all(result.outputFiles.map((file) => replaceFile(file.path, file.contents)));
  await Promise.all(
    removed
      .flatMap((file) => [outputOf(file), `${outputOf(file)}.map`])
      .map((path) => rm(path, { force: true })),
  );
  await replaceFile(manifestPath, JSON.stringify({ version: BUILD_VERSION, files: stamps }));
}

try {
  await build();
} catch (error) {
  // esbuild's message names the file, line and column; its stack is of no use here.
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
// Node 22 and later keep compiled code between starts; Node 20 has no such cache.
/** @type {{ enableCompileCache?: () => unknown }} */ (nodeModule).enableCompileCache?.();
// `--prepare` (npm's postinstall): transpiled, nothing to run; `--worker` (npm run worker):
// the job workers instead of the server.
const entry = process.argv[2] === '--worker' ? 'worker.js' : 'server.js';
if (process.argv[2] !== '--prepare') await import(pathToFileURL(join(outDir, entry)).href);
