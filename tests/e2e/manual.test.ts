import { existsSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import {
  SHELL_LANGUAGES,
  anchorsOf,
  codeBlocks,
  commandsOf,
  curlCount,
  linksOf,
  manualFiles,
  readManual,
  runShellBlock,
  type CodeBlock,
  useManualServer,
} from './manual.js';

/**
 * The manual (README.md and docs/*.md) says nothing a reader cannot do: every shell block
 * either runs here against a server on a real port (curl, and the quick npm scripts), or is
 * run by a test of its own, or says why it is not run; a new block that does none of
 * these fails. And every relative link leads to a file, and to a heading, that exists.
 * See manual.ts for the comments that mark a block.
 */

/** What a block run here may call: the reader's tools for the API, and quick scripts. */
const ALLOWED_COMMANDS = new Set(['curl', 'node', 'echo', 'grep', 'cut', 'tr', 'head', 'tail']);
const ALLOWED_SCRIPTS = new Set(['db:migrate', 'db:seed']);

function commandAllowed(command: string): boolean {
  const [name, run, script] = command.split(' ');
  if (name === 'npm') return run === 'run' && script !== undefined && ALLOWED_SCRIPTS.has(script);
  return name !== undefined && ALLOWED_COMMANDS.has(name);
}

const where = (block: CodeBlock) => `${block.file}:${block.line}`;

const blocks = manualFiles().flatMap((file) => codeBlocks(file));
const shellBlocks = blocks.filter((block) => SHELL_LANGUAGES.has(block.language));
const runHere = shellBlocks.filter((block) => block.directive.kind === 'run');
// A block that calls anything else fails the test below and is never run (it could be a
// `docker compose down -v`).
const runnable = runHere.filter((block) => commandsOf(block.code).every(commandAllowed));

describe('the manual', () => {
  it('is README.md and the files of docs/', () => {
    expect(manualFiles()).toContain('README.md');
    expect(manualFiles().length).toBeGreaterThan(5);
  });

  it('gives every code block a language (text for diagrams)', () => {
    expect(blocks.filter((block) => block.language === '').map(where)).toEqual([]);
  });

  it('says of every shell block how it is tested, or lets it be run here', () => {
    const problems: string[] = [];
    for (const block of shellBlocks) {
      const { directive } = block;
      if (directive.kind === 'invalid') {
        problems.push(`${where(block)}: unknown doc-test comment "${directive.text}"`);
      } else if (directive.kind === 'run by') {
        const test = join(projectRoot, directive.test);
        if (!existsSync(test)) {
          problems.push(`${where(block)}: ${directive.test} does not exist`);
        } else if (!readManual(directive.test).includes(block.file)) {
          problems.push(`${where(block)}: ${directive.test} does not read ${block.file}`);
        }
      } else if (directive.kind === 'run') {
        for (const command of commandsOf(block.code)) {
          if (!commandAllowed(command)) {
            problems.push(
              `${where(block)}: "${command}" cannot run in a test; mark the block ` +
                '<!-- doc-test: not run: <why> --> or make it run here',
            );
          }
        }
        if (directive.statuses && directive.statuses.length !== curlCount(block.code)) {
          problems.push(`${where(block)}: the answers listed are not one per curl command`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('runs at least one block of docs/ here', () => {
    expect(runHere.filter((block) => block.file.startsWith('docs/')).length).toBeGreaterThan(0);
  });

  it('links only to files and headings that exist', () => {
    const broken: string[] = [];
    for (const file of manualFiles()) {
      for (const link of linksOf(readManual(file))) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // https:, mailto:
        const [path = '', anchor] = link.split('#');
        const target = path === '' ? file : normalize(join(dirname(file), decodeURI(path)));
        if (target.startsWith('..') || !existsSync(join(projectRoot, target))) {
          broken.push(`${file}: ${link} (no file ${target})`);
        } else if (anchor !== undefined && target.endsWith('.md')) {
          if (!anchorsOf(readManual(target)).has(anchor)) {
            broken.push(`${file}: ${link} (no heading #${anchor} in ${target})`);
          }
        }
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('the shell blocks of the manual, run against a server', () => {
  const manual = useManualServer('api-manual-');

  for (const block of runnable) {
    it(`${where(block)} runs as written`, async () => {
      const run = await runShellBlock(block.code, manual.server.base, manual.database);
      const log = `\n${block.code}\n---\n${run.output}`;
      expect(run.code, `bash exited ${run.code}${log}`).toBe(0);
      const statuses = run.exchanges.map((exchange) => exchange.status);
      expect(statuses.length, `answers of the block's ${run.curls} curl commands${log}`).toBe(
        run.curls,
      );
      const expected = block.directive.kind === 'run' ? block.directive.statuses : null;
      if (expected) expect(statuses, log).toEqual(expected);
      else
        expect(
          statuses.filter((status) => status >= 400),
          log,
        ).toEqual([]);
    }, 90_000);
  }
});
