import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { ConfigError, loadConfig, readEnvironment } from './config.js';
import { startDatabase } from './db/client.js';
import { EmbeddedInUseError } from './db/embedded/open.js';
import { describeMigrations, type MigrationReport } from './db/migrations.js';
import { loggerOptions } from './logger.js';

async function main(): Promise<void> {
  const config = loadConfig(readEnvironment());

  // The database first: an embedded one opens on a thread of its own (a new one is even
  // initialised by a process of its own), so the sooner it starts, the more of it happens
  // while this thread loads and builds the app (imported only then, for that reason).
  let log: FastifyBaseLogger | undefined;
  const { database } = await startDatabase(config, {
    // The error carries the pool's client, connection settings and all: log what happened.
    onPoolError: (error: Error & { code?: unknown }) =>
      log?.warn({ code: error.code, message: error.message }, 'database connection lost'),
    embedded: {
      label: 'the API server',
      exclusive: true,
      onError: (message) => log?.error({ message }, 'embedded database'),
    },
  });

  let app: FastifyInstance | undefined;
  let migrated: MigrationReport | null;
  try {
    const { buildApp } = await import('./app.js');
    // The embedded database belongs to this server: it is brought up to date on every
    // start (a PostgreSQL server is migrated by `npm run db:migrate`).
    const migrating = database.kind === 'postgres' ? null : database.migrate();
    migrating?.catch(() => undefined);
    app = await buildApp(config, {
      logger: loggerOptions(config),
      database,
      ...(migrating ? { migrated: migrating } : {}),
    });
    log = app.log;
    // Fastify's own start-up (plugins, hooks) runs while a new database is still being made.
    [, migrated] = await Promise.all([app.ready(), migrating]);
  } catch (error) {
    await app?.close().catch(() => undefined);
    await database.close().catch(() => undefined);
    throw error;
  }
  const server = app;
  for (const warning of config.warnings) server.log.warn(warning);
  if (migrated?.applied.length) server.log.info(describeMigrations(migrated));

  // SIGTERM or SIGINT: the app stops taking work (/ready 503, no new connections,
  // `Connection: close` on every reply: app.ts), the requests in flight finish, the email
  // loop sends its batch in hand, then the database closes and the process exits 0. The
  // requests still running after SHUTDOWN_TIMEOUT have their connections cut; a second
  // signal ends the process at once.
  let closing = false;
  const close = async (signal: NodeJS.Signals) => {
    if (closing) {
      server.log.warn({ signal }, 'second signal while shutting down; exiting now');
      process.exit(1);
    }
    closing = true;
    server.log.info({ signal }, 'shutting down');
    const { shutdownTimeoutMs } = config;
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

  try {
    await server.listen({ port: config.port, host: config.host });
    // METRICS_PORT: the metrics' own listener (closed with the app).
    await server.metrics.listen();
  } catch (error) {
    await server.close();
    await database.close();
    throw error;
  }
  server.log.info(
    {
      database: database.location,
      ...(database.kind === 'embedded' ? { psql: `psql -h ${config.dataDir} -U postgres` } : {}),
    },
    'ready',
  );
}

main().catch((error: unknown) => {
  if (
    error instanceof ConfigError ||
    error instanceof EmbeddedInUseError ||
    (error instanceof Error && error.name === 'ContractError')
  ) {
    console.error(error.message);
  } else {
    console.error(error);
  }
  process.exit(1);
});
