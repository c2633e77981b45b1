import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { kill, startedServer, type Server } from './processes.js';

/**
 * The manual (README.md and docs/*.md) as the tests read it: its code blocks, what the
 * comment before each says about testing it, its links and headings; and a shell block run
 * the way a reader runs it, with bash and curl against a server.
 *
 * Before a shell block, an HTML comment says how it is tested:
 *
 *   <!-- doc-test: not run: <why> -->          never run (a cluster, a long-running command…)
 *   <!-- doc-test: run by tests/e2e/x.test.ts -->  run by a test of its own
 *   <!-- doc-test: answers 200 404 -->         run; its curl commands answer these statuses
 *   (no comment)                               run; every curl command answers below 400
 */

/** The files of the manual, relative to the project root. */
export function manualFiles(): string[] {
  const docs = readdirSync(join(projectRoot, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return ['README.md', ...docs];
}

export const SHELL_LANGUAGES = new Set(['sh', 'bash', 'shell', 'console', 'zsh']);

export type Directive =
  | { kind: 'run'; statuses: number[] | null }
  | { kind: 'not run'; reason: string }
  | { kind: 'run by'; test: string }
  | { kind: 'invalid'; text: string };

export interface CodeBlock {
  file: string;
  /** The line of its opening fence, 1-based. */
  line: number;
  language: string;
  code: string;
  directive: Directive;
}

const DIRECTIVE = /^<!--\s*doc-test:\s*(.*?)\s*-->$/;

function directiveOf(text: string | undefined): Directive {
  const match = text === undefined ? null : DIRECTIVE.exec(text.trim());
  if (!match) return { kind: 'run', statuses: null };
  const body = match[1]!;
  const notRun = /^not run:\s*(\S.*)$/.exec(body);
  if (notRun) return { kind: 'not run', reason: notRun[1]! };
  const runBy = /^run by\s+(\S+)$/.exec(body);
  if (runBy) return { kind: 'run by', test: runBy[1]! };
  const answers = /^answers((?:\s+\d{3})+)$/.exec(body);
  if (answers) return { kind: 'run', statuses: answers[1]!.trim().split(/\s+/).map(Number) };
  return { kind: 'invalid', text: body };
}

/** The fenced code blocks of a file of the manual, with the directive before each. */
export function codeBlocks(file: string, text = readManual(file)): CodeBlock[] {
  const lines = text.split('\n');
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, info] = open as unknown as [string, string, string, string];
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const line = lines[j]!;
      if (line.trim().startsWith(fence) && line.trim().slice(fence.length).trim() === '') break;
      body.push(line.startsWith(indent) ? line.slice(indent.length) : line.trimStart());
    }
    let before = i - 1;
    while (before >= 0 && lines[before]!.trim() === '') before--;
    blocks.push({
      file,
      line: i + 1,
      language: info.trim().split(/\s+/)[0] ?? '',
      code: body.join('\n'),
      directive: directiveOf(before >= 0 ? lines[before] : undefined),
    });
    i = j;
  }
  return blocks;
}

export function readManual(file: string): string {
  return readFileSync(join(projectRoot, file), 'utf8');
}

/** The text of a file outside its code blocks (where links and headings are). */
export function prose(text: string): string {
  const lines = text.split('\n');
  let fence: string | null = null;
  return lines
    .map((line) => {
      const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
      if (fence === null && marker) {
        fence = marker;
        return '';
      }
      if (fence !== null) {
        if (line.trim().startsWith(fence) && line.trim().slice(fence.length).trim() === '') {
          fence = null;
        }
        return '';
      }
      return line;
    })
    .join('\n');
}

/** GitHub's anchors of a file's headings (`## Rate limits` → `rate-limits`). */
export function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const match of prose(text).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const slug = match[1]!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
      .replace(/ /g, '-');
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}

/** The targets of a file's inline links, outside code. */
export function linksOf(text: string): string[] {
  const withoutCode = prose(text).replace(/`[^`\n]*`/g, 'code');
  return [...withoutCode.matchAll(/\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map(
    (match) => match[1]!,
  );
}

/**
 * The commands a shell block runs, each as its first words (`curl`, `npm run db:seed`):
 * what comes first on a line, after a pipe, `&&`, `;` or inside `$(…)`, past variable
 * assignments. Single-quoted text and comments hold none.
 */
export function commandsOf(code: string): string[] {
  const text = code
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/'[^']*'/g, "''")
    .replace(/\s#.*$/gm, '');
  const commands: string[] = [];
  for (const segment of text.split(/\$\(|&&|\|\||[|;\n()`]/)) {
    const words = segment.trim().split(/\s+/).filter(Boolean);
    while (words[0] !== undefined && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0])) words.shift();
    if (words[0] !== undefined) commands.push(words.slice(0, 3).join(' '));
  }
  return commands;
}

export interface Exchange {
  status: number;
  method: string;
  path: string;
  /** The first line of the comment the request came after in the block ('' before any). */
  section: string;
}

export interface ShellRun {
  code: number | null;
  exchanges: Exchange[];
  /** How many curl commands the block holds: each must have answered. */
  curls: number;
  output: string;
}

const SECTION = '--- section: ';

/** The curl commands of a shell block, comments aside. */
export function curlCount(code: string): number {
  return code
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .reduce((count, line) => count + (line.match(/(^|[\s(|])curl\s/g)?.length ?? 0), 0);
}

/**
 * Runs a shell block with bash against the server at `base` (for `localhost:3333` in the
 * block), in the project's folder. A curl function in front of the real one writes every
 * answer's status, method and URL to stderr (a -w of the block's own comes after it and
 * wins: the count of answers would then fall short, and a test fail), and each comment
 * that starts a line says so before the commands under it run.
 */
export async function runShellBlock(
  block: string,
  base: string,
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<ShellRun> {
  const code = block.replaceAll('localhost:3333', base.replace(/^https?:\/\//, ''));
  const lines = code.split('\n');
  const curls = curlCount(code);
  const marked = lines.flatMap((line, i) => {
    const previous = i > 0 ? lines[i - 1]! : '';
    const starts = line.startsWith('#') && !previous.startsWith('#') && !previous.endsWith('\\');
    const quoted = `'${(SECTION + line).replaceAll("'", "'\\''")}'`;
    return starts ? [`printf '%s\\n' ${quoted} >&2`, line] : [line];
  });
  const script = [
    'set -euo pipefail',
    `curl() { command curl -w '%{stderr}%{http_code} %{method} %{url_effective}\\n' "$@"; }`,
    ...marked,
  ].join('\n');
  const child = spawn('bash', ['-c', script], {
    cwd: projectRoot,
    env: {
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
      HOME: process.env.HOME ?? '',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: timeoutMs,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const exchanges: Exchange[] = [];
  let section = '';
  for (const line of stderr.split('\n')) {
    if (line.startsWith(SECTION)) section = line.slice(SECTION.length);
    const match = /^(\d{3}) ([A-Z]+) (\S+)$/.exec(line);
    if (match) {
      const url = new URL(match[3]!);
      exchanges.push({
        status: Number(match[1]),
        method: match[2]!,
        path: url.pathname + url.search,
        section,
      });
    }
  }
  return { code: exit, exchanges, curls, output: `${stderr}\n${stdout}` };
}

export interface ManualServer {
  /** The server started the way `npm start` runs it (no NODE_ENV: development). */
  server: Server;
  /** Its database settings, for the npm scripts a block runs. */
  database: Record<string, string>;
}

/**
 * A server for a test file that runs the manual's commands (started in beforeAll, stopped
 * in afterAll): on a new database of the suite's PostgreSQL when it has one, else on a new
 * embedded folder, as `npm start` would be.
 */
export function useManualServer(folderPrefix: string): ManualServer {
  const context = {} as ManualServer;
  let db: TestDatabase | undefined;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), folderPrefix));
    db = process.env.TEST_DATABASE_URL ? await createTestDatabase() : undefined;
    // DATABASE_URL empty means unset, and wins over a .env file in the project.
    context.database = db?.url ? { DATABASE_URL: db.url } : { DATABASE_URL: '', DATA_DIR: dataDir };
    context.server = await startedServer({ ...context.database, NODE_ENV: 'development' });
  }, 60_000);
  afterAll(async () => {
    await kill(context.server);
    await db?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });
  return context;
}
