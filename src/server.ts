import { buildApp } from './app.js';
import { ConfigError, loadConfig, readEnvironment } from './config.js';
import { loggerOptions } from './logger.js';

async function main(): Promise<void> {
  const config = loadConfig(readEnvironment());
  const app = await buildApp(config, { logger: loggerOptions(config) });
  for (const warning of config.warnings) app.log.warn(warning);

  let closing = false;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      app.log.error('graceful shutdown took more than 10 s; exiting');
      process.exit(1);
    }, 10_000);
    timer.unref();
    await app.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void close('SIGINT'));
  process.once('SIGTERM', () => void close('SIGTERM'));

  await app.listen({ port: config.port, host: config.host });
  app.log.info(
    { database: config.databaseUrl ? 'DATABASE_URL' : `embedded (${config.dataDir})` },
    'ready',
  );
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError || (error instanceof Error && error.name === 'ContractError')) {
    console.error(error.message);
  } else {
    console.error(error);
  }
  process.exit(1);
});
