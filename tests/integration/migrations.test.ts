import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../src/db/client.js';

const serverUrl = process.env.TEST_DATABASE_URL;
const settings = { poolMax: 2, connectTimeoutMs: 5000, statementTimeoutMs: 10000 };

async function admin(query: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(query);
  } finally {
    await client.end();
  }
}

// Several instances (or a migration Job and an impatient operator) migrating one new
// database at once: without a lock, all but one failed creating drizzle's own table.
describe.skipIf(!serverUrl)(
  'migrating one PostgreSQL database from several processes at once',
  () => {
    const name = `test_migrate_${randomBytes(4).toString('hex')}`;
    const databases: Database[] = [];

    beforeAll(async () => {
      await admin(`CREATE DATABASE "${name}"`);
    });
    afterAll(async () => {
      await Promise.all(databases.map((database) => database.close()));
      await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    });

    it('applies every migration once; the others wait, then find nothing to do', async () => {
      const url = new URL(serverUrl ?? '');
      url.pathname = `/${name}`;
      for (let i = 0; i < 4; i++) {
        databases.push(
          await createDatabase({ databaseUrl: url.toString(), dataDir: '', db: settings }),
        );
      }
      const reports = await Promise.all(databases.map((database) => database.migrate()));
      const applied = reports.map((report) => report.applied.length).sort();
      expect(applied.slice(0, 3)).toEqual([0, 0, 0]);
      expect(applied[3]).toBeGreaterThan(0);
      // Again, with everything applied: nothing happens, nothing fails.
      const again = await Promise.all(databases.map((database) => database.migrate()));
      expect(again.map((report) => report.applied)).toEqual([[], [], [], []]);
    });
  },
);
