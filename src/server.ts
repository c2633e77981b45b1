import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { access, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { loadConfig, readEnvironment, type Config } from './config/index.js';
import { startDatabase, type Database } from './db/client.js';
import { explainConnectionError, StartupError } from './db/connection-errors.js';
import { explainedFailure } from './db/failures.js';
import { describeMigrations, type MigrationReport } from './db/migrations.js';
import { withTimeout } from './lib/timeout.js';
import { loggerOptions } from './logger.js';
import { serverDatabaseOptions } from './connections.js';

/** Refuses a port another process listens on, before anything (a data folder) is made. */
async function ensurePortFree(port: number, host: string, setting: string): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) =>
      reject(portError(error, port, host, setting)),
    );
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  });
}

function portError(error: NodeJS.ErrnoException, port: number, host: string, setting: string) {
  if (error.code === 'EADDRINUSE') {
    return new StartupError(
      `Port ${port} on ${host} is in use by another process: stop it, or set ${setting} to a free port.`,
    );
  }
  if (error.code === 'EACCES') {
    return new StartupError(
      `Port ${port} on ${host} may not be used by this user (ports below 1024 need privileges): set ${setting}.`,
    );
  }
  if (error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND') {
    return new StartupError(`${host} is not an address of this machine: check HOST.`);
  }
  return error;
}

/**
 * A PostgreSQL server must answer, and have every migration of this version: otherwise
 * the server would say "ready" and answer every call with an error.
 */
async function checkDatabase(database: Database, config: Config): Promise<void> {
  try {
    await database.ping();
  } catch (error) {
    const explained = explainConnectionError(error, database.location);
    throw explained ? new StartupError(explained) : error;
  }
  const pending = await database.pending();
  if (pending.length > 0 && config.databaseUrl) {
    throw new StartupError(
      `The database at ${database.location} is not migrated: ${pending.length} migration${pending.length === 1 ? '' : 's'} pending (${pending.join(', ')}). Run npm run db:migrate (node dist/db/migrate.js in the image) with the same DATABASE_URL, then start again.`,
    );
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Both ports: the app's (PORT) and, when set, the metrics' (METRICS_PORT). */
async function ensurePortsFree(config: Config): Promise<void> {
  await ensurePortFree(config.port, config.host, 'PORT');
  if (config.metrics.port !== undefined) {
    await ensurePortFree(config.metrics.port, config.metrics.host, 'METRICS_PORT');
  }
}

/**
 * The app on a started database, ready, with the report of the migrations applied at
 * start; on a failure, the app is closed and `forget` undoes the database's start.
 */
async function buildServer(
  config: Config,
  database: Database,
  onLogger: (log: FastifyBaseLogger) => void,
  forget: () => Promise<void>,
): Promise<{ server: FastifyInstance; migrated: MigrationReport | null }> {
  let app: FastifyInstance | undefined;
  try {
    if (database.kind === 'postgres') await checkDatabase(database, config);
    // The embedded database belongs to this server: it is brought up to date on every
    // start (a PostgreSQL server is migrated by `npm run db:migrate`), as soon as it
    // answers, while the app loads.
    const migrating = database.kind === 'postgres' ? null : database.migrate();
    migrating?.catch(() => undefined);
    const { buildApp } = await import('./app.js');
    app = await buildApp(config, {
      logger: loggerOptions(config),
      database,
      ...(migrating ? { migrated: migrating } : {}),
    });
    onLogger(app.log);
    // Fastify's own start-up (plugins, hooks) runs while a new database is still being made.
    const [, migrated] = await Promise.all([app.ready(), migrating]);
    return { server: app, migrated };
  } catch (error) {
    await app?.close().catch(() => undefined);
    await forget();
    throw error;
  }
}

/** A second signal while shutting down: the connections are cut and the process exits. */
async function exitNow(
  server: FastifyInstance,
  database: Database,
  signal: NodeJS.Signals,
): Promise<never> {
  server.log.warn({ signal }, 'second signal while shutting down; exiting now');
  server.server.closeAllConnections();
  // The embedded database is stopped all the same (a moment, not the requests' wait).
  await withTimeout(database.close(), 2000, 'the database did not close').catch(() => undefined);
  process.exit(1);
}

/** Cuts the connections still open after SHUTDOWN_TIMEOUT. */
function cutOffAfter(server: FastifyInstance, shutdownTimeoutMs: number): void {
  const cutOff = setTimeout(() => {
    server.log.error(
      { shutdownTimeoutMs },
      'requests still in flight after SHUTDOWN_TIMEOUT: their connections are closed',
    );
    server.server.closeAllConnections();
    // Whatever still holds the shutdown up (the database not answering) gets as long again.
    setTimeout(() => {
      server.log.error('the shutdown did not finish; exiting');
      process.exit(1);
    }, shutdownTimeoutMs).unref();
  }, shutdownTimeoutMs);
  cutOff.unref();
}

/**
 * SIGTERM or SIGINT: the app stops taking work (/ready 503, no new connections,
 * `Connection: close` on every reply: src/plugins/graceful-close.ts), the requests in
 * flight finish, the jobs (JOBS_IN_PROCESS) stop, an email delivery run after its batch in
 * hand, then the database closes and the process exits 0. The requests still running
 * after SHUTDOWN_TIMEOUT have their connections cut; a second signal ends the process at
 * once.
 */
function closeOnSignals(server: FastifyInstance, database: Database, config: Config): void {
  let closingSince: number | null = null;
  const close = async (signal: NodeJS.Signals) => {
    if (closingSince !== null) {
      // One signal often arrives twice: Ctrl-C or a kill of the process group reaches npm
      // and this process, and npm passes it on. Only a second one sent later means "now".
      if (Date.now() - closingSince < 1000) return;
      await exitNow(server, database, signal);
    }
    closingSince = Date.now();
    server.log.info({ signal }, 'shutting down');
    cutOffAfter(server, config.shutdownTimeoutMs);
    try {
      await server.close();
      await database.close();
    } catch (error) {
      server.log.error({ err: error }, 'shutting down failed');
      process.exit(1);
    }
    process.exit(0);
  };
  process.on('SIGINT', (signal) => void close(signal));
  process.on('SIGTERM', (signal) => void close(signal));
}

/** Listens on PORT and METRICS_PORT; on a failure, closes the app and `forget`s. */
async function listen(
  server: FastifyInstance,
  config: Config,
  forget: () => Promise<void>,
): Promise<void> {
  try {
    await server.listen({ port: config.port, host: config.host }).catch((error: unknown) => {
      throw portError(error as NodeJS.ErrnoException, config.port, config.host, 'PORT');
    });
    // METRICS_PORT: the metrics' own listener (closed with the app).
    await server.metrics.listen().catch((error: unknown) => {
      const { port, host } = config.metrics;
      throw portError(error as NodeJS.ErrnoException, port ?? 0, host, 'METRICS_PORT');
    });
  } catch (error) {
    await server.close();
    await forget();
    throw error;
  }
}

async function main(): Promise<void> {
  const config = loadConfig(readEnvironment());
  await ensurePortsFree(config);
  // A failed first start leaves no empty data folder behind.
  const newFolder = !config.databaseUrl && !(await exists(config.dataDir));

  // The database first: an embedded one opens on a thread of its own (a new one is even
  // initialised by a process of its own), so the sooner it starts, the more of it happens
  // while this thread loads and builds the app (imported only then, for that reason).
  let log: FastifyBaseLogger | undefined;
  const { database } = await startDatabase(
    config,
    serverDatabaseOptions(() => log),
  ).catch(async (error: unknown) => {
    if (newFolder) await rm(config.dataDir, { recursive: true, force: true });
    throw error;
  });

  const forget = async () => {
    await database.close().catch(() => undefined);
    if (newFolder) await rm(config.dataDir, { recursive: true, force: true });
  };
  const { server, migrated } = await buildServer(
    config,
    database,
    (appLog) => {
      log = appLog;
    },
    forget,
  );
  for (const warning of config.warnings) server.log.warn(warning);
  if (migrated?.applied.length) server.log.info(describeMigrations(migrated));

  closeOnSignals(server, database, config);
  await listen(server, config, forget);
  server.log.info(
    {
      database: database.location,
      ...(database.kind === 'embedded' ? { psql: `psql -h ${config.dataDir} -U postgres` } : {}),
    },
    'ready',
  );
}

main().catch((error: unknown) => {
  const explained =
    explainedFailure(error) ??
    (error instanceof Error && error.name === 'ContractError' ? error.message : null);
  // Anything else is a fault of the server's own: its stack says where.
  console.error(explained ?? error);
  process.exit(1);
});
