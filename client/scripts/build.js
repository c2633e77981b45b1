// @ts-check
/**
 * npm run build (and npm pack, through prepack): compiles src/ into dist/ with the
 * TypeScript of the project around this package, then copies the types that
 * `npm run generate` wrote from the spec (generated/api.d.ts) and from the WebSocket's
 * AsyncAPI document (generated/asyncapi.d.ts) to dist/api.d.ts and dist/asyncapi.d.ts,
 * where the compiled index.d.ts and live.d.ts import them from. Nothing of the API is
 * written by hand.
 */
import { spawnSync } from 'node:child_process';
import { copyFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(packageRoot, 'dist');
const generated = join(packageRoot, '..', 'generated');

await rm(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(
  process.execPath,
  [tsc, '-p', join(packageRoot, 'tsconfig.build.json')],
  { stdio: 'inherit' },
);
if (compiled.status !== 0) process.exit(compiled.status ?? 1);
for (const types of ['api.d.ts', 'asyncapi.d.ts']) {
  await copyFile(join(generated, types), join(dist, types));
}
process.stdout.write(`built ${dist}\n`);
