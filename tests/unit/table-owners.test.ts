import { readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { getTableName, is } from 'drizzle-orm';
import { PgTable } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownershipProblems } from '../../scripts/check-ownership.js';
import { tableOwners } from '../../src/db/owners.js';
import * as schema from '../../src/db/schema/index.js';
import { projectRoot } from '../../src/paths.js';

/** Trees laid out like src/, each writing tables from one module, checked as src/ is. */
let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(projectRoot, 'tests', '.owners-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

async function tree(name: string, files: Record<string, string>): Promise<string> {
  const root = join(base, name);
  for (const [path, content] of Object.entries(files)) {
    const file = join(root, path);
    await mkdir(dirname(file), { recursive: true });
    // The trees import the real schema and Drizzle, as src/ does.
    const schemaPath = relative(dirname(file), join(projectRoot, 'src/db/schema/index.js'));
    await writeFile(
      file,
      `import { sql } from 'drizzle-orm';\nimport type { Db } from '${relative(dirname(file), join(projectRoot, 'src/db/client.js'))}';\nimport * as schema from '${schemaPath}';\nvoid sql; void schema;\n${content}\n`,
    );
  }
  return root;
}

describe('the table owners', () => {
  it('name an owner, a module of src/modules, for every table of the schema', () => {
    const tables = Object.values(schema)
      .filter((value) => is(value, PgTable))
      .map((table) => getTableName(table as PgTable));
    expect(Object.keys(tableOwners).sort()).toEqual(tables.sort());
    const modules = readdirSync(join(projectRoot, 'src/modules'));
    for (const owner of Object.values(tableOwners)) expect(modules).toContain(owner);
  });

  it('find no write from outside its owner in src/', () => {
    expect(ownershipProblems(join(projectRoot, 'src'))).toEqual([]);
  }, 60_000);

  it('find writes by Drizzle and by SQL text from another module, under any name', async () => {
    const root = await tree('writes', {
      // The owner may write; anyone may read.
      'modules/users/repository.ts': `export const own = (db: Db) => db.update(schema.users).set({ role: 'admin' });`,
      'modules/posts/repository.ts': `export const read = (db: Db) => db.select().from(schema.users);`,
      'modules/account/repository.ts': [
        `import { users as accounts, loginFailures } from '${'../../../../../src/db/schema/index.js'}';`,
        `const table = accounts;`,
        `export const a = (db: Db) => db.update(table).set({ passwordHash: 'x' });`,
        `export const b = (db: Db) => db.delete(loginFailures);`,
        `export const c = (db: Db) => db.execute(sql\`delete from sessions where user_id = \${'x'}\`);`,
        `export const d = (db: Db) => db.execute(sql\`update \${schema.posts} set view_count = 0\`);`,
        `export const e = (db: Db) => db.execute(sql.raw('insert into email_outbox default values'));`,
      ].join('\n'),
      'db/housekeeping.ts': `export const f = (db: Db) => db.execute(sql\`truncate email_tokens\`);`,
    });
    const problems = ownershipProblems(root);
    // In the order of the files: db/ before modules/.
    expect(problems).toEqual([
      expect.stringMatching(/db\/housekeeping\.ts:\d+: outside src\/modules writes email_tokens/),
      expect.stringMatching(
        /account\/repository\.ts:\d+: module account writes users \(\.update\(\)\); its owner is users$/,
      ),
      expect.stringMatching(
        /module account writes login_failures \(\.delete\(\)\); its owner is auth$/,
      ),
      expect.stringMatching(/module account writes sessions \(SQL text\); its owner is auth$/),
      expect.stringMatching(/module account writes posts \(SQL text\); its owner is posts$/),
      expect.stringMatching(/module account writes email_outbox \(SQL text given to raw\)/),
    ]);
  }, 60_000);
});
