/**
 * A worker process for tests/integration/webhook-workers.test.ts: the project's worker,
 * built by buildWorker as `npm run worker` builds it and configured from the environment
 * the same way, with shorter job locks and webhook timing than production's (TEST_TIMING,
 * JSON: `{ jobLocks, webhookTiming }`) so that a worker killed mid-delivery has its job
 * taken over within seconds. On stdout it says `ready` once it listens, and
 * `sending <url>` as each webhook request leaves it (undici's diagnostics channel), so that
 * a test knows which process holds a delivery. SIGTERM closes it.
 */
import { subscribe } from 'node:diagnostics_channel';
import { loadConfig, readEnvironment } from '../../src/config/index.js';
import { buildWorker, type WorkerDeps } from '../../src/worker-app.js';

const timing = JSON.parse(process.env.TEST_TIMING ?? '{}') as Pick<
  WorkerDeps,
  'jobLocks' | 'webhookTiming'
>;

subscribe('undici:request:create', (message) => {
  const { request } = message as { request: { origin: string; path: string } };
  process.stdout.write(`sending ${request.origin}${request.path}\n`);
});

const worker = await buildWorker(loadConfig(readEnvironment()), timing);
process.once('SIGTERM', () => {
  void worker.close().finally(() => process.exit(0));
});
await worker.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write('ready\n');
