import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import pg from 'pg';
import type { Config } from '../config.js';
import { migrationsFolder } from '../paths.js';
import * as schema from './schema/index.js';

/** The Drizzle database both drivers give; repositories take this and nothing narrower. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  readonly db: Db;
  readonly kind: 'postgres' | 'pglite';
  /** Applies the migrations in drizzle/ that have not run yet. */
  migrate(): Promise<void>;
  /** Resolves when the database answers a query. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** Where pool errors go (a restarted database must not crash the process). */
  onPoolError?: (error: Error) => void;
  /**
   * Embedded only: start from this dump of a data folder (PGlite's dumpDataDir) instead
   * of an empty one. Loading a dump takes a fraction of a fresh initdb.
   */
  pgliteTemplate?: Blob;
}

type DbSettings = Pick<Config, 'databaseUrl' | 'dataDir' | 'db'>;

export async function createDatabase(
  config: DbSettings,
  options: DatabaseOptions = {},
): Promise<Database> {
  return config.databaseUrl
    ? createPostgres(config.databaseUrl, config.db, options)
    : createPglite(config.dataDir, options.pgliteTemplate);
}

function createPostgres(url: string, settings: Config['db'], options: DatabaseOptions): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: settings.poolMax,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    // The server cancels a slow statement; the client gives up a little later, which is the
    // only thing that frees a connection when the database host goes silent.
    statement_timeout: settings.statementTimeoutMs,
    query_timeout: settings.statementTimeoutMs + 1000,
    idleTimeoutMillis: 30_000,
  });
  pool.on('error', (error) => options.onPoolError?.(error));
  const db = drizzlePg({ client: pool, schema }) as unknown as Db;
  return {
    db,
    kind: 'postgres',
    migrate: () => migratePg(drizzlePg({ client: pool }), { migrationsFolder }),
    ping: async () => {
      await db.execute(sql`select 1`);
    },
    close: () => pool.end(),
  };
}

async function createPglite(dataDir: string, template: Blob | undefined): Promise<Database> {
  // 'memory://' keeps the database in memory (tests); anything else is a folder on disk.
  if (!dataDir.startsWith('memory://')) await mkdir(dataDir, { recursive: true });
  const client = await PGlite.create({ dataDir, ...(template ? { loadDataDir: template } : {}) });
  const db = drizzlePglite({ client, schema }) as unknown as Db;
  return {
    db,
    kind: 'pglite',
    migrate: () => migratePglite(drizzlePglite({ client }), { migrationsFolder }),
    ping: async () => {
      await db.execute(sql`select 1`);
    },
    close: () => client.close(),
  };
}
