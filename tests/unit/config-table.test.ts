import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  configDocPath,
  endMarker,
  renderTable,
  startMarker,
  withTable,
} from '../../scripts/config-table.js';
import { configAreas, environmentVariables } from '../../src/config/index.js';

describe('the table of environment variables (docs/configuration.md)', () => {
  it('has a row for every variable, under its area, with its default or what unset means', () => {
    const table = renderTable();
    for (const name of environmentVariables) {
      expect(table.match(new RegExp(`^\\| \`${name}\` \\|`, 'gm')), name).toHaveLength(1);
    }
    for (const area of configAreas) expect(table).toContain(`**${area.title}**`);
    expect(table).toContain('| `PORT` | `3333` | the port the API listens on |');
    expect(table).toContain('| `BCRYPT_COST` | 12 / 10 / 4 |');
    expect(table).toMatch(/^\| `DATABASE_URL` \| unset \|/m);
  });

  it('keeps a `|` in a description inside its cell', () => {
    const table = renderTable([
      { title: 'T', properties: { X: { type: 'string', description: 'a | b' } } },
    ]);
    expect(table).toContain('| `X` | unset | a \\| b |');
  });

  it('replaces what is between the markers and nothing else, the same way twice', async () => {
    const document = `# Title\n\nBefore.\n\n${startMarker}\nold table\n${endMarker}\n\nAfter.\n`;
    const once = await withTable(document, '| a | b |\n| --- | --- |\n| 1 | 2 |');
    expect(once).toBe(
      `# Title\n\nBefore.\n\n${startMarker}\n\n| a   | b   |\n| --- | --- |\n| 1   | 2   |\n\n${endMarker}\n\nAfter.\n`,
    );
    expect(await withTable(once, '| a | b |\n| --- | --- |\n| 1 | 2 |')).toBe(once);
    await expect(withTable('# No markers\n')).rejects.toThrow(/env-table:start/);
  });

  it('is what docs/configuration.md holds (npm run generate writes it)', async () => {
    const current = await readFile(configDocPath, 'utf8');
    expect(current).toBe(await withTable(current));
  });
});
