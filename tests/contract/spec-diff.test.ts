import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  compareSpecs,
  formatReport,
  main,
  majorWentUp,
  specAtCommit,
  type Spec,
  type SpecChange,
} from '../../scripts/spec-diff.js';
import { bundledSpecPath, projectRoot, specSourcePath } from '../../src/paths.js';

/**
 * The breaking-change gate (npm run spec:diff): changes planted in a copy of the bundled
 * spec, each compared with the spec as it is.
 */

interface Schema {
  type?: string | string[];
  enum?: string[];
  maxLength?: number;
  required?: string[];
  properties?: Record<string, Schema>;
}
interface Operation {
  operationId?: string;
  parameters?: unknown[];
  responses: Record<string, unknown>;
}
interface Doc {
  info: { version: string };
  paths: Record<string, Record<string, Operation>>;
  components: {
    schemas: Record<string, Schema>;
    parameters: Record<string, { schema: Schema }>;
  };
}

const spec = JSON.parse(readFileSync(bundledSpecPath, 'utf8')) as Doc;

/** A copy of the bundled spec with `plant` applied. */
function planted(plant: (doc: Doc) => void): Doc {
  const doc = structuredClone(spec);
  plant(doc);
  return doc;
}

const schema = (doc: Doc, name: string): Schema => doc.components.schemas[name]!;
const props = (doc: Doc, name: string): Record<string, Schema> => schema(doc, name).properties!;
const operation = (doc: Doc, path: string, method: string): Operation => doc.paths[path]![method]!;

const breakingPlants: Array<{
  name: string;
  plant: (doc: Doc) => void;
  expected: Pick<SpecChange, 'id' | 'where'>;
}> = [
  {
    name: 'a removed operation (deletePost)',
    plant: (doc) => delete doc.paths['/api/posts/{id}']!.delete,
    expected: { id: 'api-removed-without-deprecation', where: 'DELETE /api/posts/{id}' },
  },
  {
    name: 'a removed response field (Post.viewCount)',
    plant: (doc) => {
      delete props(doc, 'Post').viewCount;
      schema(doc, 'Post').required = schema(doc, 'Post').required!.filter((p) => p !== 'viewCount');
    },
    expected: { id: 'response-required-property-removed', where: 'GET /api/posts/{id}' },
  },
  {
    name: 'a new required request field (createPost: category)',
    plant: (doc) => {
      props(doc, 'CreatePostRequest').category = { type: 'string' };
      schema(doc, 'CreatePostRequest').required!.push('category');
    },
    expected: { id: 'new-required-request-property', where: 'POST /api/posts' },
  },
  {
    name: 'a new required query parameter (listPosts: lang)',
    plant: (doc) => {
      operation(doc, '/api/posts', 'get').parameters!.push({
        name: 'lang',
        in: 'query',
        required: true,
        schema: { type: 'string' },
      });
    },
    expected: { id: 'new-required-request-parameter', where: 'GET /api/posts' },
  },
  {
    name: 'a narrowed enum (status loses draft)',
    plant: (doc) => {
      doc.components.parameters.PostStatus!.schema.enum = ['published'];
    },
    expected: { id: 'request-parameter-enum-value-removed', where: 'GET /api/posts' },
  },
  {
    name: 'a narrowed type (updateUser: firstName no longer null)',
    plant: (doc) => {
      props(doc, 'UpdateUserRequest').firstName!.type = 'string';
    },
    expected: { id: 'request-property-became-not-nullable', where: 'PATCH /api/users/{id}' },
  },
  {
    name: 'a narrowed length (createPost: title at most 100)',
    plant: (doc) => {
      props(doc, 'CreatePostRequest').title!.maxLength = 100;
    },
    expected: { id: 'request-property-max-length-decreased', where: 'POST /api/posts' },
  },
  {
    name: 'a removed status code (getPost: 404)',
    plant: (doc) => delete operation(doc, '/api/posts/{id}', 'get').responses['404'],
    expected: { id: 'response-non-success-status-removed', where: 'GET /api/posts/{id}' },
  },
  {
    name: 'a changed success status (createPost: 201 becomes 200)',
    plant: (doc) => {
      const responses = operation(doc, '/api/posts', 'post').responses;
      responses['200'] = responses['201'];
      delete responses['201'];
    },
    expected: { id: 'response-success-status-removed', where: 'POST /api/posts' },
  },
];

describe('the breaking-change gate', () => {
  it('finds no change between the spec and itself', async () => {
    const diff = await compareSpecs(spec, structuredClone(spec));
    expect(diff).toMatchObject({ breaking: [], nonBreaking: [], passed: true });
    expect(formatReport(diff, 'a', 'b')).toContain('No change to the API.');
  });

  it.each(breakingPlants)('fails on $name', async ({ plant, expected }) => {
    const diff = await compareSpecs(spec, planted(plant));
    expect(diff.breaking).toContainEqual(expect.objectContaining(expected));
    expect(diff.nonBreaking).not.toContainEqual(expect.objectContaining({ id: expected.id }));
    expect(diff.passed).toBe(false);
    expect(formatReport(diff, 'a', 'b')).toMatch(
      /breaking change\(s\) without a new major version .* set info\.version .* to 1\.0\.0/,
    );
  });

  it('fails on a removed optional response field', async () => {
    const withSummary = planted((doc) => {
      props(doc, 'Post').summary = { type: 'string' };
    });
    const diff = await compareSpecs(withSummary, spec);
    expect(diff.breaking).toContainEqual(
      expect.objectContaining({
        id: 'response-optional-property-removed',
        where: 'GET /api/posts/{id}',
      }),
    );
    expect(diff.passed).toBe(false);
  });

  it('passes a new optional request field, a new operation and a new problem code, listing them', async () => {
    const revision = planted((doc) => {
      props(doc, 'CreatePostRequest').summary = { type: 'string', maxLength: 300 };
      doc.paths['/api/posts/{id}/history'] = {
        get: {
          operationId: 'getPostHistory',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: 'The history.' } },
        },
      };
      schema(doc, 'ProblemCode').enum!.push('GONE');
    });
    const diff = await compareSpecs(spec, revision);
    expect(diff.breaking).toEqual([]);
    expect(diff.passed).toBe(true);
    expect(diff.nonBreaking).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: 'new-optional-request-property', where: 'POST /api/posts' }),
        expect.objectContaining({ id: 'endpoint-added', where: 'GET /api/posts/{id}/history' }),
        expect.objectContaining({ id: 'response-property-enum-value-added' }),
      ]),
    );
    // The GraphQL schema derived from it: a new query, a new input field; nothing breaks.
    expect(diff.graphql).toEqual({
      breaking: [],
      nonBreaking: expect.arrayContaining([
        expect.objectContaining({ type: 'FIELD_ADDED', where: 'Query.postHistory' }),
        expect.objectContaining({ type: 'INPUT_FIELD_ADDED', where: 'CreatePostInput.summary' }),
      ]) as unknown,
    });
    const report = formatReport(diff, 'a', 'b');
    expect(report).toContain('Breaking changes (0):');
    expect(report).toContain('GraphQL schema, breaking changes (0):');
    expect(report).toContain('No breaking change.');
  });

  it('fails on a change that breaks the GraphQL schema derived from the spec', async () => {
    // A new operationId is no change to an HTTP client; to GraphQL it is a renamed field.
    const revision = planted((doc) => {
      doc.paths['/api/posts/{id}']!.get!.operationId = 'readPost';
    });
    const diff = await compareSpecs(spec, revision);
    expect(diff.graphql).toMatchObject({
      breaking: expect.arrayContaining([
        expect.objectContaining({ type: 'FIELD_REMOVED', where: 'Query.post' }),
      ]) as unknown,
    });
    expect(diff.passed).toBe(false);
    expect(formatReport(diff, 'a', 'b')).toMatch(
      /✗ Query\.post: Field 'post' .*was removed .*\[FIELD_REMOVED\][\s\S]*breaking change\(s\) without a new major version/,
    );
  });

  it('passes breaking changes when the major number of info.version went up, and says why', async () => {
    const revision = planted((doc) => {
      for (const { plant } of breakingPlants) plant(doc);
      doc.info.version = '1.0.0';
    });
    const diff = await compareSpecs(spec, revision);
    const found = new Set(diff.breaking.map((change) => change.id));
    for (const { expected } of breakingPlants) expect(found).toContain(expected.id);
    expect(diff).toMatchObject({ majorBumped: true, passed: true });
    expect(formatReport(diff, 'a', 'b')).toContain(
      "Breaking changes allowed: info.version's major number went up (0.1.0 → 1.0.0).",
    );
  });

  it('fails breaking changes with a minor version bump', async () => {
    const revision = planted((doc) => {
      breakingPlants[0]!.plant(doc);
      doc.info.version = '0.2.0';
    });
    expect(await compareSpecs(spec, revision)).toMatchObject({ majorBumped: false, passed: false });
  });

  it('reads major numbers', () => {
    expect(majorWentUp('0.1.0', '1.0.0')).toBe(true);
    expect(majorWentUp('1.9.9', '2.0.0-beta.1')).toBe(true);
    expect(majorWentUp('v2.0.0', 'v10.0.0')).toBe(true);
    expect(majorWentUp('1.0.0', '1.1.0')).toBe(false);
    expect(majorWentUp('2.0.0', '1.0.0')).toBe(false);
    expect(majorWentUp('latest', '2.0.0')).toBe(false);
  });
});

describe('npm run spec:diff', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'spec-diff-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs main() in-process, capturing what it prints. */
  async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
    const error = vi
      .spyOn(console, 'error')
      .mockImplementation((...a) => void err.push(a.join(' ')));
    try {
      return { code: await main(argv), out: out.join('\n'), err: err.join('\n') };
    } finally {
      log.mockRestore();
      error.mockRestore();
    }
  }

  it('exits 1 on a breaking change between two files, naming it (the script itself)', async () => {
    const revision = join(dir, 'removed-operation.json');
    await writeFile(revision, JSON.stringify(planted(breakingPlants[0]!.plant)));
    const tsx = join(projectRoot, 'node_modules', '.bin', 'tsx');
    const result = await promisify(execFile)(
      tsx,
      ['scripts/spec-diff.ts', '--base', bundledSpecPath, '--revision', revision],
      { cwd: projectRoot },
    ).then(
      ({ stdout }) => ({ code: 0, stdout }),
      (error: { code: number; stdout: string }) => ({ code: error.code, stdout: error.stdout }),
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('Breaking changes (1):');
    expect(result.stdout).toMatch(
      /DELETE \/api\/posts\/\{id\} \(deletePost\)\n\s+✗ .*\[api-removed-without-deprecation\]/,
    );
  }, 30_000);

  it('exits 0 on the same breaking change with a major version bump', async () => {
    const revision = join(dir, 'removed-operation-v1.json');
    const doc = planted(breakingPlants[0]!.plant);
    doc.info.version = '1.0.0';
    await writeFile(revision, JSON.stringify(doc));
    const result = await run(['--base', bundledSpecPath, '--revision', revision]);
    expect(result.code).toBe(0);
    expect(result.out).toContain('Breaking changes (1):');
    expect(result.out).toContain('Breaking changes allowed');
  });

  it('compares the working spec with the spec at a ref', async () => {
    // The working spec may differ from HEAD while someone edits it, and the exit code then
    // follows the edit: only the report's source is checked here.
    const result = await run(['HEAD']);
    expect(result.out).toMatch(/^Base: {5}generated\/openapi\.json at HEAD \([0-9a-f]{12}\)/);
    expect([0, 1]).toContain(result.code);
  });

  it('exits 2 on a usage error: no such ref, unknown option, a missing file, both modes', async () => {
    expect(await run(['no-such-ref-anywhere'])).toMatchObject({
      code: 2,
      err: expect.stringContaining('no-such-ref-anywhere names no commit'),
    });
    expect((await run(['--nonsense'])).code).toBe(2);
    expect((await run([])).code).toBe(2);
    expect((await run(['HEAD', '--base', bundledSpecPath])).code).toBe(2);
    expect((await run(['--base', join(dir, 'absent.json')])).code).toBe(2);
  });

  it('skips with a notice, exit 0, when told to and the ref names no commit (a shallow clone)', async () => {
    expect(await run(['no-such-ref-anywhere', '--skip-missing-ref'])).toMatchObject({
      code: 0,
      out: expect.stringContaining('spec:diff skipped'),
    });
  });
});

describe('the spec at a git ref', () => {
  let repo: string;
  const git = (...args: string[]) =>
    execFileSync(
      'git',
      [
        '-c',
        'user.name=test',
        '-c',
        'user.email=test@example.com',
        '-c',
        'commit.gpgsign=false',
      ].concat(args),
      { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] },
    )
      .toString()
      .trim();
  const put = async (path: string, text: string) => {
    await mkdir(dirname(join(repo, path)), { recursive: true });
    await writeFile(join(repo, path), text);
  };
  const commit = (message: string) => {
    git('add', '-A');
    git('commit', '-q', '--allow-empty', '-m', message);
    return git('rev-parse', 'HEAD');
  };

  beforeAll(async () => {
    repo = await mkdtemp(join(tmpdir(), 'spec-diff-repo-'));
    git('init', '-q');
  });
  afterAll(async () => {
    await rm(repo, { recursive: true, force: true });
  });

  it('is nothing before the spec, the bundled openapi/ folder without generated/, then generated/openapi.json', async () => {
    await put('README.md', 'no spec yet\n');
    const before = commit('no spec');
    expect(await specAtCommit(before, repo)).toBeNull();

    await put(
      'openapi/openapi.yaml',
      [
        'openapi: 3.1.0',
        'info: { title: Things, version: 1.0.0 }',
        'paths:',
        '  /things:',
        '    get:',
        '      operationId: listThings',
        '      responses:',
        "        '200':",
        '          description: The things.',
        '          content:',
        '            application/json:',
        "              schema: { $ref: './schemas.yaml#/Thing' }",
        '',
      ].join('\n'),
    );
    await put(
      'openapi/schemas.yaml',
      'Thing:\n  type: object\n  properties:\n    name: { type: string }\n',
    );
    const sourceOnly = commit('spec without generated/');
    const bundled = await specAtCommit(sourceOnly, repo);
    expect(bundled?.source).toBe('openapi/openapi.yaml (bundled)');
    expect(JSON.stringify(bundled?.spec)).toContain('"name":{"type":"string"}');

    await put(
      'generated/openapi.json',
      JSON.stringify({ ...bundled!.spec, info: { version: '2.0.0' } }),
    );
    const generated = commit('generated/');
    expect(await specAtCommit(generated, repo)).toMatchObject({
      source: 'generated/openapi.json',
      spec: { info: { version: '2.0.0' } },
    });

    // An operation removed since that commit: breaking.
    const { spec: base } = (await specAtCommit(sourceOnly, repo))!;
    const revision = structuredClone(base) as Spec & { paths: Record<string, unknown> };
    delete revision.paths['/things'];
    expect((await compareSpecs(base, revision)).breaking).toContainEqual(
      expect.objectContaining({ id: 'api-path-removed-without-deprecation', where: 'GET /things' }),
    );
  });

  it('bundles every file of a split openapi/ folder, whether the other side is one file or split', async () => {
    // The spec as one file (the bundle: JSON is YAML), then split as it is in openapi/ now.
    await rm(join(repo, 'generated'), { recursive: true, force: true });
    await rm(join(repo, 'openapi'), { recursive: true, force: true });
    const current = JSON.parse(readFileSync(bundledSpecPath, 'utf8')) as Spec;
    await put('openapi/openapi.yaml', JSON.stringify(current, null, 2));
    const single = commit('the spec in one file');
    await rm(join(repo, 'openapi'), { recursive: true, force: true });
    await cp(dirname(specSourcePath), join(repo, 'openapi'), { recursive: true });
    const split = commit('the spec split into paths/ and components/');

    const before = await specAtCommit(single, repo);
    const after = await specAtCommit(split, repo);
    expect(after?.source).toBe('openapi/openapi.yaml (bundled)');
    expect(after?.spec).toEqual(current);
    expect(await compareSpecs(before!.spec, after!.spec)).toMatchObject({
      breaking: [],
      nonBreaking: [],
    });

    // Both split: a response removed in an operation's own file is seen.
    const views = join(repo, 'openapi/paths/api_posts_{id}_views.yaml');
    const text = await readFile(views, 'utf8');
    const removed = "    '404':\n      $ref: ../components/responses/PostNotFound.yaml\n";
    expect(text).toContain(removed);
    await writeFile(views, text.replace(removed, ''));
    const changed = commit('a 404 removed from recordPostView');
    const diff = await compareSpecs(after!.spec, (await specAtCommit(changed, repo))!.spec);
    expect(diff.breaking).toContainEqual(
      expect.objectContaining({
        id: 'response-non-success-status-removed',
        where: 'POST /api/posts/{id}/views',
      }),
    );
  }, 60_000);
});
