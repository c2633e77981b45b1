import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tableOwners } from '../../src/db/owners.js';
import { projectRoot } from '../../src/paths.js';

/**
 * docs/architecture.md draws src/ one line per folder, with the tables each module owns:
 * the drawing must follow the tree and src/db/owners.ts.
 */
const doc = readFileSync(join(projectRoot, 'docs/architecture.md'), 'utf8');
const section = doc.slice(doc.indexOf('## Where things are'));
const block = /```text\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
const lines = block.split('\n').filter((line) => line.startsWith('src/'));
const drawn = lines.map((line) => line.split(/\s+/, 1)[0]!);

function foldersOf(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      return [path, ...foldersOf(path)];
    });
}

describe('docs/architecture.md', () => {
  it('draws every folder of src/ once, and no folder that is gone', () => {
    const folders = [
      'src',
      ...foldersOf(join(projectRoot, 'src')).map((path) => relative(projectRoot, path)),
    ]
      .map((folder) => `${folder}/`)
      .sort();
    expect(lines.length).toBeGreaterThan(0);
    expect([...drawn].sort()).toEqual(folders);
  });

  it("names each module's tables as src/db/owners.ts has them", () => {
    const modules = drawn.filter((folder) => /^src\/modules\/[^/]+\/$/.test(folder));
    expect(modules.length).toBeGreaterThan(0);
    for (const folder of modules) {
      const module = folder.split('/')[2]!;
      const line = lines.find((candidate) => candidate.startsWith(folder))!;
      const listed = /\(tables: ([^)]*)\)\s*$/.exec(line)?.[1];
      expect(listed, `${folder} says "(tables: …)" at the end of its line`).toBeDefined();
      const owned = Object.entries(tableOwners)
        .filter(([, owner]) => owner === module)
        .map(([table]) => table);
      expect(listed === 'none' ? [] : listed!.split(', '), folder).toEqual(owned);
    }
    const owners = new Set(Object.values(tableOwners));
    for (const owner of owners) expect(drawn).toContain(`src/modules/${owner}/`);
  });
});
