/**
 * Part of npm run check: the layers of src/ depend one way (DESIGN.md §1).
 * - no import cycle between files;
 * - no cycle between the parts of src/: each folder (each module of src/modules apart) and
 *   each file at the top of src/;
 * - src/http imports nothing from src/modules (app.ts composes them), nor from src/plugins;
 * - src/plugins (the infrastructure) imports nothing from src/modules: what it needs of them
 *   (handlers, background tasks) it is given by app.ts;
 * - src/jobs (the job queue, infrastructure) imports nothing from src/modules, src/http or
 *   src/plugins: the composition gives it the job handlers;
 * - in a module only handlers.ts imports src/http;
 * - src/lib, src/db, the domain errors and the API type names import none of these;
 * - every table is written only by its owning module (scripts/check-ownership.ts).
 *
 *   npm run check:imports            # checks src/
 *   tsx scripts/check-imports.ts dir # checks another tree laid out like src/
 */
import { relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cruise, type ICruiseResult, type IForbiddenRuleType } from 'dependency-cruiser';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';
import { projectRoot } from '../src/paths.js';
import { ownershipProblems } from './check-ownership.js';

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function rulesFor(root: string): IForbiddenRuleType[] {
  const at = `^${escape(root)}/`;
  return [
    {
      name: 'no-file-cycle',
      comment: 'Files import each other in a circle.',
      severity: 'error',
      from: { path: at },
      to: { circular: true },
    },
    {
      name: 'http-imports-no-module',
      comment: 'src/http is the contract at run time; app.ts composes it with the modules.',
      severity: 'error',
      from: { path: `${at}http/` },
      to: { path: `${at}modules/` },
    },
    {
      name: 'plugins-import-no-module',
      comment: 'src/plugins is infrastructure; app.ts gives it what it needs of the modules.',
      severity: 'error',
      from: { path: `${at}plugins/` },
      to: { path: `${at}modules/` },
    },
    {
      name: 'jobs-import-no-module',
      comment:
        'src/jobs is infrastructure; the composition (app.ts, worker.ts) gives it the job handlers.',
      severity: 'error',
      from: { path: `${at}jobs/` },
      to: { path: `${at}(modules|http|plugins)/` },
    },
    {
      name: 'http-imports-no-plugin',
      comment:
        'The plugins build on the contract at run time (its errors, its operations), not the reverse.',
      severity: 'error',
      from: { path: `${at}http/` },
      to: { path: `${at}plugins/` },
    },
    {
      name: 'only-handlers-import-http',
      comment: 'Services and repositories know nothing of HTTP.',
      severity: 'error',
      from: { path: `${at}modules/[^/]+/`, pathNot: `${at}modules/[^/]+/handlers\\.ts$` },
      to: { path: `${at}http/` },
    },
    {
      name: 'lower-layers-import-no-upper',
      comment: 'src/lib, src/db, the domain errors and the API type names sit below the rest.',
      severity: 'error',
      from: { path: `${at}(lib/|db/|errors\\.ts$|api-types\\.ts$)` },
      to: { path: `${at}(http|modules|plugins|jobs)/` },
    },
  ];
}

/** The part of src/ a file belongs to: `modules/users`, `http/`, `app.ts`, … */
function partOf(root: string, file: string): string | null {
  const inside = relative(root, file).split('\\').join('/');
  if (inside.startsWith('..')) return null;
  const [first, second, ...rest] = inside.split('/');
  if (first === 'modules' && second !== undefined && rest.length > 0) {
    return `modules/${second}`;
  }
  return second === undefined ? (first ?? null) : `${first}/`;
}

/** Cycles in a directed graph: its strongly connected components of two or more nodes. */
function cyclesOf(edges: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (node: string) => {
    index.set(node, next);
    low.set(node, next);
    next += 1;
    stack.push(node);
    onStack.add(node);
    for (const target of edges.get(node) ?? []) {
      if (!index.has(target)) {
        visit(target);
        low.set(node, Math.min(low.get(node)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node)!, index.get(target)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const node of edges.keys()) if (!index.has(node)) visit(node);
  return found;
}

/** Every breach of the rules above in the tree at `dir`, as sentences; empty when clean. */
export async function importProblems(dir: string): Promise<string[]> {
  const root = relative(projectRoot, resolve(dir)).split('\\').join('/');
  const result = await cruise(
    [root],
    {
      validate: true,
      ruleSet: { forbidden: rulesFor(root) },
      tsPreCompilationDeps: true,
      tsConfig: { fileName: 'tsconfig.json' },
      baseDir: projectRoot,
    },
    { extensionAlias: { '.js': ['.ts', '.js'] } },
    { tsConfig: extractTSConfig(resolve(projectRoot, 'tsconfig.json')) },
  );
  const output = result.output as ICruiseResult;
  const problems = output.summary.violations.map((violation) =>
    violation.rule.name === 'no-file-cycle' && violation.cycle
      ? `${violation.rule.name}: ${[violation.from, ...violation.cycle.map((step) => step.name)].join(' → ')}`
      : `${violation.rule.name}: ${violation.from} → ${violation.to}`,
  );

  const edges = new Map<string, Set<string>>();
  for (const module of output.modules) {
    const from = partOf(root, module.source);
    if (from === null) continue;
    for (const dependency of module.dependencies) {
      const to = partOf(root, dependency.resolved);
      if (to === null || to === from) continue;
      if (!edges.has(from)) edges.set(from, new Set());
      edges.get(from)!.add(to);
    }
  }
  for (const cycle of cyclesOf(edges)) {
    problems.push(`parts of ${root}/ import each other in a circle: ${cycle.join(', ')}`);
  }
  return problems;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = process.argv[2] ?? 'src';
  const problems = await importProblems(dir);
  if (problems.length > 0) {
    console.error(`Imports that break the layering of ${dir}/:\n- ${problems.join('\n- ')}`);
  }
  const writes = ownershipProblems(dir);
  if (writes.length > 0) {
    console.error(
      `Writes to a table from outside its owner (src/db/owners.ts):\n- ${writes.join('\n- ')}`,
    );
  }
  if (problems.length > 0 || writes.length > 0) process.exit(1);
  console.log(`${dir}/: imports run one way, no cycles; every table is written by its owner only.`);
}
