import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type pg from 'pg';
import type { PoolConfig } from 'pg';
import type { Config } from '../config/index.js';
import { migrationsFolder } from '../paths.js';
import { describeDatabaseUrl } from './connection-errors.js';
import { openEmbedded } from './embedded/open.js';
import {
  migrateAndReport,
  pendingMigrations,
  type MigrationReport,
  type Query,
} from './migrations.js';
import {
  TIMESTAMPTZ_OID,
  isoInstant,
  setStatementRunner,
  type StatementRunner,
} from './statements.js';
import type * as schema from './schema/index.js';

// The drivers (drizzle, pg) are imported where they are used, after an embedded folder
// has been claimed: its server, or a new folder's initdb, starts sooner.

/** The Drizzle database both drivers give; repositories take this and nothing narrower. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  readonly db: Db;
  /**
   * postgres: DATABASE_URL. embedded: the PostgreSQL server on DATA_DIR, run by the
   * process that owns the folder (maybe this one) and reached through its socket.
   */
  readonly kind: 'postgres' | 'embedded';
  /** Where the data is, in words, for logs and scripts. */
  readonly location: string;
  /**
   * How to open more connections to it (the job queue's PostgreSQL backend keeps its own
   * pool): DATABASE_URL, or the embedded server's socket.
   */
  readonly connection: DatabaseConnection;
  /** Applies the migrations in drizzle/ that have not run yet, and says which it applied. */
  migrate(): Promise<MigrationReport>;
  /** Resolves when the database answers a query. */
  ping(): Promise<void>;
  /** The migrations of drizzle/ this database has not had yet (names, oldest first). */
  pending(): Promise<string[]>;
  /**
   * Runs `work` on a connection of its own, without the pool's statement and query
   * timeouts: a schema change that rewrites a table (db/search.ts) may take minutes.
   */
  withOwnConnection<T>(work: (query: Query) => Promise<T>): Promise<T>;
  /** The connection pool's counts (metrics). */
  poolStats(): PoolStats;
  close(): Promise<void>;
}

export type DatabaseConnection = Pick<
  PoolConfig,
  'connectionString' | 'host' | 'port' | 'user' | 'database'
>;

/** node-postgres' Pool at one moment: connections open, of which idle; queries waiting. */
export interface PoolStats {
  readonly total: number;
  readonly idle: number;
  readonly waiting: number;
  readonly max: number;
}

export interface DatabaseOptions {
  /**
   * Called with the text and parameters of every statement the app's Drizzle database runs
   * (not the migrations): for tests that count or EXPLAIN the statements of a request.
   */
  onQuery?: (query: string, params: unknown[]) => void;
  /** Where pool errors go (a restarted database must not crash the process). */
  onPoolError?: (error: Error) => void;
  /** Embedded only: how this process shares the folder with others (see embedded/open.ts). */
  embedded?: {
    /** What this process is, for the message other processes get ("npm run db:seed"). */
    label: string;
    /** Refuse to run beside another owner (the server), rather than use it (scripts). */
    exclusive?: boolean;
    /** Problems of the embedded database that no query is waiting for (it stopped). */
    onError?: (message: string) => void;
  };
}

type DbSettings = Pick<Config, 'databaseUrl' | 'dataDir' | 'db'>;

/** A database that answers queries. */
export async function createDatabase(
  config: DbSettings,
  options: DatabaseOptions = {},
): Promise<Database> {
  const { database, ready } = await startDatabase(config, options);
  try {
    await ready;
  } catch (error) {
    await database.close();
    throw error;
  }
  return database;
}

/**
 * A database that may still be starting (an embedded folder being opened, or initialised,
 * by this process): `ready` tells when it answers; its migrate() waits for that itself.
 * This lets the server load and build the app while the database opens.
 */
export async function startDatabase(
  config: DbSettings,
  options: DatabaseOptions = {},
): Promise<{ database: Database; ready: Promise<void> }> {
  if (config.databaseUrl) {
    const database = await createPostgres(
      { connectionString: config.databaseUrl },
      config.db,
      options,
      describeDatabaseUrl(config.databaseUrl),
      { lockMigrations: true },
    );
    return { database, ready: Promise.resolve() };
  }

  const access = await openEmbedded(config.dataDir, {
    label: options.embedded?.label ?? 'a script',
    exclusive: options.embedded?.exclusive ?? false,
    poolMax: config.db.poolMax,
    ...(options.embedded?.onError ? { onError: options.embedded.onError } : {}),
  });
  const location = access.owner
    ? `the embedded database in ${access.host}, served by process ${access.owner.pid} (${access.owner.owner})`
    : `the embedded database in ${access.host}`;
  let postgres: Database;
  try {
    postgres = await createPostgres(
      { host: access.host, port: access.port, user: 'postgres', database: 'postgres' },
      config.db,
      options,
      location,
    );
  } catch (error) {
    await access.close();
    throw error;
  }
  const database: Database = {
    db: postgres.db,
    kind: 'embedded',
    location,
    connection: postgres.connection,
    migrate: async () => {
      await access.ready;
      return postgres.migrate();
    },
    ping: async () => {
      await access.ready;
      return postgres.ping();
    },
    pending: async () => {
      await access.ready;
      return postgres.pending();
    },
    withOwnConnection: async (work) => {
      await access.ready;
      return postgres.withOwnConnection(work);
    },
    poolStats: () => postgres.poolStats(),
    close: async () => {
      try {
        await postgres.close();
      } finally {
        await access.close();
      }
    },
  };
  return { database, ready: access.ready };
}

/** The advisory lock migrators take on a PostgreSQL server (any constant bigint of this app's). */
const MIGRATION_LOCK = 7_294_517_002_183n.toString();

async function createPostgres(
  connection: DatabaseConnection,
  settings: Config['db'],
  options: DatabaseOptions,
  location: string,
  migrations: { lockMigrations: boolean } = { lockMigrations: false },
): Promise<Database> {
  const [{ default: pg }, { drizzle }, { migrate }, schema] = await Promise.all([
    import('pg'),
    import('drizzle-orm/node-postgres'),
    import('drizzle-orm/node-postgres/migrator'),
    import('./schema/index.js'),
  ]);
  const pool = new pg.Pool({
    ...connection,
    max: settings.poolMax,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    // The server cancels a slow statement; the client gives up a little later, which is the
    // only thing that frees a connection when the database host goes silent.
    statement_timeout: settings.statementTimeoutMs,
    query_timeout: settings.statementTimeoutMs + 1000,
    idleTimeoutMillis: 30_000,
  });
  pool.on('error', (error) => options.onPoolError?.(error));
  // The pool listens for a client's 'error' only while the client is idle in it; a
  // connection that dies while a request holds it (a statement running, or between the
  // statements of a transaction) emits 'error' on its client all the same, and with no
  // listener that ends the process. The request learns of it from its statement (a 503),
  // and the pool drops the client when it is released: the listener only has to exist.
  pool.on('connect', (client) => client.on('error', () => undefined));
  const db = drizzle({ client: pool, schema, ...loggerOf(options) }) as unknown as Db;
  setStatementRunner(db, statementRunnerOf(pg, pool, options));
  const withOwnConnection = <T>(work: (query: Query, client: pg.Client) => Promise<T>) =>
    onOwnConnection(
      new pg.Client({ ...connection, connectionTimeoutMillis: settings.connectTimeoutMs }),
      work,
    );
  return {
    db,
    kind: 'postgres',
    location,
    connection,
    migrate: async () => {
      if (!migrations.lockMigrations) {
        return migrateAndReport(
          async (text) => (await pool.query<Record<string, unknown>>(text)).rows,
          () => migrate(drizzle({ client: pool }), { migrationsFolder }),
        );
      }
      // One migrator at a time (several instances or Jobs starting together would otherwise
      // race to create drizzle's own table and fail): the others wait for the lock, then
      // find nothing left to do. On a connection of its own: building an index on a large
      // table may take minutes. Ending the session releases the lock.
      return withOwnConnection(async (query, client) => {
        await query('select pg_advisory_lock($1)', [MIGRATION_LOCK]);
        return migrateAndReport(query, () => migrate(drizzle({ client }), { migrationsFolder }));
      });
    },
    ping: async () => {
      await pool.query('select 1');
    },
    withOwnConnection: (work) => withOwnConnection((query) => work(query)),
    pending: () =>
      pendingMigrations(async (text) => (await pool.query<Record<string, unknown>>(text)).rows),
    poolStats: () => ({
      total: pool.totalCount,
      idle: pool.idleCount,
      waiting: pool.waitingCount,
      max: settings.poolMax,
    }),
    close: () => pool.end(),
  };
}

/** How `pool` runs the named statements of src/db/statements.ts. */
function statementRunnerOf(
  driver: typeof pg,
  pool: pg.Pool,
  options: DatabaseOptions,
): StatementRunner {
  // Timestamps as the API writes them (src/db/statements.ts); every other type as usual.
  const types = {
    getTypeParser: ((oid: number, format?: 'text' | 'binary'): ((text: string) => unknown) =>
      oid === TIMESTAMPTZ_OID
        ? isoInstant
        : (driver.types.getTypeParser(oid, format) as (text: string) => unknown)) as never,
  };
  return {
    run: async (name, text, values) => {
      options.onQuery?.(text, [...values]);
      const config = { name, text, values: [...values], types, rowMode: 'array' as const };
      return (await pool.query<unknown[]>(config)).rows;
    },
  };
}

/** Runs `work` on `client` alone (no pool: none of its timeouts), then ends it. */
async function onOwnConnection<T>(
  client: pg.Client,
  work: (query: Query, client: pg.Client) => Promise<T>,
): Promise<T> {
  // A connection lost mid-statement fails its statement; without a listener, its 'error'
  // event would end the process before that error is reported.
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await work(
      async (text, values) => (await client.query<Record<string, unknown>>(text, values)).rows,
      client,
    );
  } finally {
    await client.end();
  }
}

function loggerOf(options: DatabaseOptions) {
  const { onQuery } = options;
  return onQuery
    ? { logger: { logQuery: (query: string, params: unknown[]) => onQuery(query, params) } }
    : {};
}
