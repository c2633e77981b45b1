/**
 * Part of npm run check: fails when generated/ is not what `npm run generate` would write
 * from the current openapi/ (someone edited the spec, any of its files, and did not
 * regenerate, or edited a generated file by hand), and when a file under openapi/paths or
 * openapi/components is not part of the spec: a file no $ref reaches, or a component the
 * root lists that nothing else uses. Redocly's no-unused-components cannot see the latter
 * here: the root's own `$ref` to the component's file counts as a use.
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  asyncApiSourcePath,
  bundledAsyncApiPath,
  bundledSpecPath,
  generatedAsyncApiTypesPath,
  generatedGraphqlSchemaPath,
  generatedTypesPath,
  projectRoot,
  specSourcePath,
} from '../src/paths.js';
import { buildAsyncApiArtifacts } from './asyncapi-artifacts.js';
import { buildGraphqlSchema } from './graphql-artifacts.js';
import { buildSpecArtifacts } from './spec-artifacts.js';

/** The folders under the root's own that hold the parts of the spec. */
const PART_FOLDERS = ['paths', 'webhooks', 'components'];

export interface GeneratedCheck {
  /** The files of generated/ that differ from what `npm run generate` would write. */
  stale: string[];
  /** Files under paths/ and components/ that no $ref reaches (relative to the spec's folder). */
  unreferenced: string[];
  /** `schemas/Unused`: components that no $ref of the bundled spec names. */
  unusedComponents: string[];
}

export interface GeneratedCheckOptions {
  specPath?: string;
  bundledPath?: string;
  typesPath?: string;
  /** generated/schema.graphql's place. */
  graphqlPath?: string;
  /**
   * The AsyncAPI document (by default asyncapi.yaml beside the spec's root) and the files
   * generated from it; null: none.
   */
  asyncApi?: { sourcePath: string; bundledPath: string; typesPath: string } | null;
}

async function filesUnder(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true }).catch(
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [];
      throw error;
    },
  );
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

/** Adds each `$ref` in `node` to `refs`, unless it names `owner` (a component naming itself). */
function collectRefs(node: unknown, owner: string | null, refs: Set<string>): void {
  if (Array.isArray(node)) {
    for (const item of node) collectRefs(item, owner, refs);
  } else if (typeof node === 'object' && node !== null) {
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') {
        if (value !== owner) refs.add(value);
      } else {
        collectRefs(value, owner, refs);
      }
    }
  }
}

const pointerToken = (name: string) => name.replaceAll('~', '~0').replaceAll('/', '~1');

/** Components of the bundled `document` that no $ref outside their own definition names. */
export function unusedComponents(document: object): string[] {
  const { components, ...rest } = document as {
    components?: Record<string, Record<string, unknown>>;
  };
  const refs = new Set<string>();
  collectRefs(rest, null, refs);
  const named: Array<[string, string]> = [];
  for (const [type, entries] of Object.entries(components ?? {})) {
    // Security schemes are named by `security` requirements, never by a $ref.
    if (type === 'securitySchemes') continue;
    for (const [name, component] of Object.entries(entries)) {
      const pointer = `#/components/${pointerToken(type)}/${pointerToken(name)}`;
      collectRefs(component, pointer, refs);
      named.push([`${type}/${name}`, pointer]);
    }
  }
  return named.filter(([, pointer]) => !refs.has(pointer)).map(([name]) => name);
}

export async function checkGenerated(options: GeneratedCheckOptions = {}): Promise<GeneratedCheck> {
  const specPath = resolve(options.specPath ?? specSourcePath);
  const expected = await buildSpecArtifacts(specPath);
  const asyncApi =
    options.asyncApi === undefined
      ? {
          sourcePath: join(dirname(specPath), basename(asyncApiSourcePath)),
          bundledPath: bundledAsyncApiPath,
          typesPath: generatedAsyncApiTypesPath,
        }
      : options.asyncApi;
  const files: Array<readonly [string, string]> = [
    [options.bundledPath ?? bundledSpecPath, expected.bundledJson],
    [options.typesPath ?? generatedTypesPath, expected.typesDts],
    [options.graphqlPath ?? generatedGraphqlSchemaPath, buildGraphqlSchema(expected.document)],
  ];
  if (asyncApi) {
    const live = await buildAsyncApiArtifacts(expected.document, asyncApi.sourcePath, specPath);
    files.push([asyncApi.bundledPath, live.bundledJson], [asyncApi.typesPath, live.typesDts]);
  }
  const stale: string[] = [];
  for (const [path, content] of files) {
    const actual = await readFile(path, 'utf8').catch(() => null);
    if (actual !== content) stale.push(path);
  }

  const specFolder = dirname(specPath);
  const read = new Set(expected.files.map((file) => resolve(file)));
  const parts = (
    await Promise.all(PART_FOLDERS.map((folder) => filesUnder(join(specFolder, folder))))
  ).flat();
  const unreferenced = parts
    .filter((file) => !read.has(resolve(file)))
    .map((file) => relative(specFolder, file).replaceAll('\\', '/'))
    .sort();

  return { stale, unreferenced, unusedComponents: unusedComponents(expected.document) };
}

async function main(): Promise<number> {
  const { stale, unreferenced, unusedComponents: unused } = await checkGenerated();
  for (const path of stale)
    console.error(`${relative(projectRoot, path)} is out of date with openapi/.`);
  if (stale.length > 0) console.error('Run `npm run generate` and commit the result.');
  for (const file of unreferenced) {
    console.error(`openapi/${file} is part of no spec: no $ref reaches it. $ref it, or delete it.`);
  }
  for (const component of unused) {
    console.error(
      `components/${component} is never used: nothing but the root's list $refs it. Use it, or delete its file and its entry in openapi/openapi.yaml.`,
    );
  }
  if (stale.length + unreferenced.length + unused.length > 0) return 1;
  console.log('generated/ matches openapi/, and every file under openapi/ is part of the spec.');
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = await main();
}
