import type { FastifyBaseLogger } from 'fastify';
import { ConfigError, loadConfig, readEnvironment } from './config.js';
import { startDatabase } from './db/client.js';
import { EmbeddedInUseError } from './db/embedded/open.js';
import { describeMigrations } from './db/migrations.js';
import { loggerOptions } from './logger.js';

async function main(): Promise<void> {
  const config = loadConfig(readEnvironment());
  // The app's modules load while the database opens: an embedded one opens on a thread of
  // its own (a new one is even initialised by a process of its own), so the two overlap.
  const appModule = import('./app.js');
  appModule.catch(() => undefined); // awaited below; not unhandled if the database fails first

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

  let app;
  let migrated;
  try {
    const { buildApp } = await appModule;
    // The embedded database belongs to this server: it is brought up to date on every
    // start (a PostgreSQL server is migrated by `npm run db:migrate`).
    const migrating = database.kind === 'postgres' ? null : database.migrate();
    migrating?.catch(() => undefined);
    app = await buildApp(config, { logger: loggerOptions(config), database });
    log = app.log;
    migrated = await migrating;
  } catch (error) {
    await database.close().catch(() => undefined);
    throw error;
  }
  for (const warning of config.warnings) app.log.warn(warning);
  if (migrated?.applied.length) app.log.info(describeMigrations(migrated));

  const server = app;
  let closing = false;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    server.log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      server.log.error('graceful shutdown took more than 10 s; exiting');
      process.exit(1);
    }, 10_000);
    timer.unref();
    await server.close();
    await database.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void close('SIGINT'));
  process.once('SIGTERM', () => void close('SIGTERM'));

  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    await app.close();
    await database.close();
    throw error;
  }
  app.log.info(
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
