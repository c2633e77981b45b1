import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  bundledAsyncApiPath,
  bundledSpecPath,
  generatedAsyncApiTypesPath,
  generatedGraphqlSchemaPath,
  specSourcePath,
} from '../../src/paths.js';
import { checkGenerated } from '../../scripts/check-generated.js';

/**
 * `npm run check:generated` on the spec's files as they are, and on copies of them edited
 * the way a change that forgot `npm run generate` edits them: generated/ is compared with
 * the spec bundled from every file under openapi/, so an edit to any one of them is drift.
 */

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A copy of openapi/, checked against the committed generated/. */
async function copyOfSpec(): Promise<{
  folder: string;
  check: () => ReturnType<typeof checkGenerated>;
}> {
  dir = await mkdtemp(join(tmpdir(), 'generated-'));
  const folder = join(dir, 'openapi');
  await cp(dirname(specSourcePath), folder, { recursive: true });
  return {
    folder,
    check: () => checkGenerated({ specPath: join(folder, 'openapi.yaml') }),
  };
}

async function edit(path: string, from: string, to: string): Promise<void> {
  const text = await readFile(path, 'utf8');
  expect(text).toContain(from);
  await writeFile(path, text.replace(from, to));
}

describe('generated/', () => {
  it('is the bundle of the spec: root, paths/ and components/', async () => {
    expect(await checkGenerated()).toEqual({ stale: [], unreferenced: [], unusedComponents: [] });
  }, 60_000);

  it('is out of date when a component file is edited, and a file no $ref reaches is named', async () => {
    const spec = await copyOfSpec();
    await edit(
      join(spec.folder, 'components/schemas/Email.yaml'),
      'maxLength: 254',
      'maxLength: 200',
    );
    await writeFile(
      join(spec.folder, 'components/schemas/Orphan.yaml'),
      'type: string\nmaxLength: 10\n',
    );
    // A length limit is in the bundled spec only; the types have no place for it. The
    // WebSocket's document carries a copy of the account's schema, which has Email.
    expect(await spec.check()).toEqual({
      stale: [bundledSpecPath, bundledAsyncApiPath],
      unreferenced: ['components/schemas/Orphan.yaml'],
      unusedComponents: [],
    });
  }, 60_000);

  it('names a component the root lists that nothing else uses', async () => {
    const spec = await copyOfSpec();
    await writeFile(
      join(spec.folder, 'components/schemas/Unused.yaml'),
      'type: string\nmaxLength: 10\n',
    );
    await edit(
      join(spec.folder, 'openapi.yaml'),
      '  schemas:\n',
      '  schemas:\n    Unused:\n      $ref: ./components/schemas/Unused.yaml\n',
    );
    const { unreferenced, unusedComponents } = await spec.check();
    expect({ unreferenced, unusedComponents }).toEqual({
      unreferenced: [],
      unusedComponents: ['schemas/Unused'],
    });
  }, 60_000);

  it('is out of date when the spec changes what GraphQL shows: generated/schema.graphql', async () => {
    const spec = await copyOfSpec();
    // A new optional field of a post: the bundle, its types and the GraphQL type change.
    await edit(
      join(spec.folder, 'components/schemas/PostViews.yaml'),
      'properties:\n',
      'properties:\n  readers:\n    type: integer\n    minimum: 0\n    maximum: 1000\n',
    );
    const { stale } = await spec.check();
    expect(stale).toContain(generatedGraphqlSchemaPath);
  }, 60_000);

  it('is out of date when asyncapi.yaml is edited: its bundle, and its types when a message changes', async () => {
    const spec = await copyOfSpec();
    await edit(join(spec.folder, 'asyncapi.yaml'), 'const: ping\n', 'const: ping-ping\n');
    expect(await spec.check()).toEqual({
      stale: [bundledAsyncApiPath, generatedAsyncApiTypesPath],
      unreferenced: [],
      unusedComponents: [],
    });
  }, 60_000);
});
