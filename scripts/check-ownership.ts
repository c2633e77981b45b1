/**
 * Part of npm run check (through scripts/check-imports.ts): every table is written only by
 * the module that owns it (src/db/owners.ts; DESIGN.md §1).
 *
 * It reads the sources with TypeScript's type checker, so it follows a table to its
 * declaration whatever it is called where it is used (an import alias, a variable, a
 * parameter typed as that table), and finds:
 * - Drizzle writes: `.insert(t)`, `.update(t)`, `.delete(t)` where `t` is typed as a
 *   table of the schema (its type carries the table's SQL name);
 * - SQL text that writes: INSERT INTO, UPDATE, DELETE FROM, TRUNCATE, ALTER TABLE naming a
 *   table, in an `sql` tagged template (or the table interpolated there: `update ${posts}`)
 *   and in string literals given to `sql.raw`, `execute` or `query`.
 * It cannot see SQL assembled at run time (a table name in a variable or concatenated
 * text), writes made by the database itself (ON DELETE CASCADE, triggers), code that is
 * not under the checked folder (scripts/seed-data.ts writes users and posts in bulk), or
 * reads: a module may still select from another's table (joins for an author's name).
 *
 *   tsx scripts/check-ownership.ts [dir]   # src by default
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { tableOwners } from '../src/db/owners.js';
import { projectRoot } from '../src/paths.js';

const writeKeyword = String.raw`(?:insert\s+into|update|delete\s+from|truncate(?:\s+table)?|alter\s+table)`;
/** A write naming its table in the text. */
const namedWrite = new RegExp(
  String.raw`\b${writeKeyword}\s+(?:only\s+)?"?([a-z_][a-z0-9_]*)"?`,
  'gi',
);
/** A write whose table follows as an interpolated value. */
const writeBeforeValue = new RegExp(String.raw`\b${writeKeyword}\s+(?:only\s+)?$`, 'i');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.ts$/.test(entry) && !entry.endsWith('.d.ts') ? [path] : [];
  });
}

/** The module a file belongs to (`modules/<name>/…`), or null for the rest of the tree. */
function moduleOf(root: string, file: string): string | null {
  const [first, second, ...rest] = relative(root, file).split(/[\\/]/);
  return first === 'modules' && second !== undefined && rest.length > 0 ? second : null;
}

/** The SQL name of the table of `owners` an expression is typed as, or null. */
function tableTypeOf(
  checker: ts.TypeChecker,
  owners: Readonly<Record<string, string>>,
  node: ts.Node,
): string | null {
  const type = checker.getTypeAtLocation(node);
  const meta = type.getProperty('_');
  if (!meta) return null;
  const metaType = checker.getTypeOfSymbolAtLocation(meta, node);
  const name = metaType.getProperty('name');
  if (!name || !metaType.getProperty('columns')) return null;
  const nameType = checker.getTypeOfSymbolAtLocation(name, node);
  return nameType.isStringLiteral() && nameType.value in owners ? nameType.value : null;
}

/** The files with the project's compiler options (tsconfig.json). */
function programOf(files: string[]): ts.Program {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(projectRoot, 'tsconfig.json'),
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined },
  );
  return ts.createProgram(files, config?.options ?? {});
}

export interface OwnershipOptions {
  /** Table → owning module; src/db/owners.ts by default. */
  owners?: Readonly<Record<string, string>>;
}

/** Every write to a table from outside its owning module under `dir`, as sentences. */
export function ownershipProblems(dir: string, options: OwnershipOptions = {}): string[] {
  const owners: Readonly<Record<string, string>> = options.owners ?? tableOwners;
  const root = resolve(dir);
  const files = sourceFiles(root);
  const program = programOf(files);
  const checker = program.getTypeChecker();
  const problems: string[] = [];

  const tableOf = (node: ts.Node) => tableTypeOf(checker, owners, node);

  for (const file of files) {
    const source = program.getSourceFile(file);
    if (!source) continue;
    const module = moduleOf(root, file);
    const report = (node: ts.Node, table: string, how: string) => {
      if (owners[table] === module) return;
      const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
      const where = `${relative(projectRoot, file).split('\\').join('/')}:${line + 1}`;
      problems.push(
        `${where}: ${module === null ? 'outside src/modules' : `module ${module}`} writes ${table} (${how}); its owner is ${owners[table]}`,
      );
    };
    const scanText = (node: ts.Node, text: string, how: string) => {
      for (const match of text.matchAll(namedWrite)) {
        const table = match[1]!.toLowerCase();
        if (table in owners) report(node, table, how);
      }
    };
    /** An sql`` template: its text, and a table interpolated right after a write keyword. */
    const scanTemplate = (node: ts.TaggedTemplateExpression) => {
      const template = node.template;
      if (ts.isNoSubstitutionTemplateLiteral(template)) {
        scanText(node, template.text, 'SQL text');
        return;
      }
      let before = template.head.text;
      scanText(node, before, 'SQL text');
      for (const span of template.templateSpans) {
        if (writeBeforeValue.test(before)) {
          const table = tableOf(span.expression);
          if (table) report(span, table, 'SQL text');
        }
        before = span.literal.text;
        scanText(node, before, 'SQL text');
      }
    };
    const visit = (node: ts.Node): void => {
      if (
        ts.isCallExpression(node) &&
        ts.isPropertyAccessExpression(node.expression) &&
        node.arguments.length > 0
      ) {
        const method = node.expression.name.text;
        if (['insert', 'update', 'delete'].includes(method)) {
          const table = tableOf(node.arguments[0]!);
          if (table) report(node, table, `.${method}()`);
        }
        if (['raw', 'execute', 'query'].includes(method)) {
          const [first] = node.arguments;
          if (first && (ts.isStringLiteral(first) || ts.isNoSubstitutionTemplateLiteral(first))) {
            scanText(first, first.text, `SQL text given to ${method}`);
          }
        }
      }
      if (ts.isTaggedTemplateExpression(node)) scanTemplate(node);
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return problems;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = process.argv[2] ?? 'src';
  const problems = ownershipProblems(dir);
  if (problems.length > 0) {
    console.error(
      `Writes to a table from outside its owner (src/db/owners.ts):\n- ${problems.join('\n- ')}`,
    );
    process.exit(1);
  }
  console.log(`${dir}/: every table is written by its owner only.`);
}
