import type { FastifyInstance } from 'fastify';
import { loadConfig, readEnvironment, type Config } from './config/index.js';
import { explainedFailure } from './db/failures.js';
import { StartupError } from './db/connection-errors.js';
import { loggerOptions } from './logger.js';
import { buildWorker } from './worker-app.js';

/**
 * `npm run worker` / `node dist/worker.js`: the jobs in a process of their own (set
 * JOBS_IN_PROCESS=false on the API servers then). SIGTERM or SIGINT: the relay finishes
 * its batch, the workers get SHUTDOWN_TIMEOUT to finish the jobs in hand (those still
 * running are run again by another worker once their lock expires), then it exits 0.
 */
function closeOnSignals(worker: FastifyInstance, config: Config): void {
  let closing = false;
  const close = async (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    worker.log.info({ signal }, 'shutting down');
    // The jobs' wait, then as long again for the connections to close.
    setTimeout(() => {
      worker.log.error('the shutdown did not finish; exiting');
      process.exit(1);
    }, 2 * config.shutdownTimeoutMs).unref();
    try {
      await worker.close();
    } catch (error) {
      worker.log.error({ err: error }, 'shutting down failed');
      process.exit(1);
    }
    process.exit(0);
  };
  process.on('SIGINT', (signal) => void close(signal));
  process.on('SIGTERM', (signal) => void close(signal));
}

async function main(): Promise<void> {
  const config = loadConfig(readEnvironment());
  // The embedded database belongs to the API server's process; a worker beside it would
  // need a second owner. In development the API runs the jobs itself (JOBS_IN_PROCESS).
  if (!config.databaseUrl) {
    throw new StartupError(
      'npm run worker needs DATABASE_URL (the embedded database is the API server’s own; without DATABASE_URL, JOBS_IN_PROCESS runs the jobs inside the API server).',
    );
  }
  const worker = await buildWorker(config, { logger: loggerOptions(config) });
  for (const warning of config.warnings) worker.log.warn(warning);
  closeOnSignals(worker, config);
  await worker.listen({ port: config.jobs.workerPort, host: config.host });
  worker.log.info({ queue: config.redis ? 'redis' : 'postgres' }, 'worker ready');
}

main().catch((error: unknown) => {
  console.error(explainedFailure(error) ?? error);
  process.exit(1);
});
