/**
 * The table of environment variables in docs/configuration.md, between its marker lines,
 * rendered from the schemas of src/config/ (each variable's area, default and description),
 * so that the manual cannot drift from what the server reads.
 *
 *   npm run generate                      # rewrites it, with generated/
 *   tsx scripts/config-table.ts --check   # part of npm run check: fails when it drifted
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as prettier from 'prettier';
import type { EnvProperty } from '../src/config/area.js';
import { configAreas } from '../src/config/index.js';
import { projectRoot } from '../src/paths.js';

export const configDocPath = join(projectRoot, 'docs', 'configuration.md');
export const startMarker = '<!-- env-table:start -->';
export const endMarker = '<!-- env-table:end -->';

/** A table cell: one line, and a `|` that does not end the cell. */
const cell = (text: string) => text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');

function defaultOf(variable: EnvProperty): string {
  if (variable.default !== undefined) return `\`${String(variable.default)}\``;
  return variable['x-default'] ?? 'unset';
}

/** One table per area, in the order of src/config/schema.ts, each under its area's name. */
export function renderTable(areas: typeof configAreas = configAreas): string {
  return areas
    .map((area) => {
      const rows = Object.entries(area.properties).map(
        ([name, variable]) =>
          `| \`${name}\` | ${cell(defaultOf(variable))} | ${cell(variable.description)} |`,
      );
      return [
        `**${area.title}**`,
        '',
        '| variable | default | description |',
        '| --- | --- | --- |',
        ...rows,
      ].join('\n');
    })
    .join('\n\n');
}

/** `document` with the table between its markers, formatted as Prettier formats the docs. */
export async function withTable(document: string, table: string = renderTable()): Promise<string> {
  const start = document.indexOf(startMarker);
  const end = document.indexOf(endMarker);
  if (start === -1 || end < start) {
    throw new Error(`${startMarker} and then ${endMarker} must each be on a line of their own.`);
  }
  const replaced = `${document.slice(0, start + startMarker.length)}\n\n${table}\n\n${document.slice(end)}`;
  return prettier.format(replaced, {
    parser: 'markdown',
    ...(await prettier.resolveConfig(configDocPath)),
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const name = relative(projectRoot, configDocPath);
  const current = await readFile(configDocPath, 'utf8');
  const expected = await withTable(current);
  if (process.argv.includes('--check')) {
    if (current !== expected) {
      console.error(`${name}: the table of environment variables differs from src/config/.`);
      console.error('Run `npm run generate` and commit the result.');
      process.exit(1);
    }
    console.log(`${name} matches src/config/.`);
  } else if (current !== expected) {
    await writeFile(configDocPath, expected);
    console.log(`wrote ${name}`);
  } else {
    console.log(`${name} is up to date`);
  }
}
