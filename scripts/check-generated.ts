/**
 * Part of npm run check: fails when generated/ is not what `npm run generate` would write
 * from the current openapi/ (someone edited the spec and did not regenerate, or edited
 * a generated file by hand).
 */
import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { bundledSpecPath, generatedTypesPath, projectRoot } from '../src/paths.js';
import { buildSpecArtifacts } from './spec-artifacts.js';

const expected = await buildSpecArtifacts();
const files: Array<[string, string]> = [
  [bundledSpecPath, expected.bundledJson],
  [generatedTypesPath, expected.typesDts],
];

let stale = 0;
for (const [path, content] of files) {
  const actual = await readFile(path, 'utf8').catch(() => null);
  if (actual !== content) {
    stale += 1;
    console.error(`${relative(projectRoot, path)} is out of date with openapi/.`);
  }
}
if (stale > 0) {
  console.error('Run `npm run generate` and commit the result.');
  process.exit(1);
}
console.log('generated/ matches openapi/.');
