import { randomBytes } from 'node:crypto';
import type { SQL } from 'drizzle-orm';
import pg from 'pg';
import { createDatabase, type Database, type DatabaseOptions } from '../../src/db/client.js';

/**
 * A fresh, migrated database for one test file: a new database on the PostgreSQL server
 * named by TEST_DATABASE_URL (dropped afterwards): the machine's, or the embedded one that
 * global-setup.ts starts without it.
 */
export interface TestDatabase {
  /** The connection string of the fresh database. */
  url: string;
  database: Database;
  /** Runs SQL on the fresh database (for arranging states the API cannot reach). */
  sql(query: SQL): Promise<Record<string, unknown>[]>;
  drop(): Promise<void>;
}

async function rowsOf(database: Database, query: SQL): Promise<Record<string, unknown>[]> {
  const result: unknown = await database.db.execute(query);
  return (result as { rows: Record<string, unknown>[] }).rows;
}

const settings = { poolMax: 5, connectTimeoutMs: 5000, statementTimeoutMs: 10000 };

/**
 * `onQuery` sees every statement run through the database's Drizzle instance: the app's,
 * when the app is given this database, and those of `sql()`.
 */
export async function createTestDatabase(
  options: Pick<DatabaseOptions, 'onQuery'> = {},
): Promise<TestDatabase> {
  const serverUrl = process.env.TEST_DATABASE_URL;
  const onQuery = options.onQuery ? { onQuery: options.onQuery } : {};
  if (!serverUrl)
    throw new Error('TEST_DATABASE_URL is unset: tests/helpers/global-setup.ts sets it');

  const name = `test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();

  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const database = await createDatabase(
    { databaseUrl: url.toString(), dataDir: '', db: settings },
    onQuery,
  );
  await database.migrate();
  return {
    url: url.toString(),
    database,
    sql: (query) => rowsOf(database, query),
    drop: async () => {
      await database.close();
      const cleanup = new pg.Client({ connectionString: serverUrl });
      await cleanup.connect();
      await cleanup.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await cleanup.end();
    },
  };
}
