import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { bundledSpecPath, generatedTypesPath } from '../../src/paths.js';
import { buildSpecArtifacts } from '../../scripts/spec-artifacts.js';

describe('generated/ follows openapi/', () => {
  it('is what `npm run generate` writes from the current spec', async () => {
    const expected = await buildSpecArtifacts();
    expect(await readFile(bundledSpecPath, 'utf8')).toBe(expected.bundledJson);
    expect(await readFile(generatedTypesPath, 'utf8')).toBe(expected.typesDts);
  });
});
