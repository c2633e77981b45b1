import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Config } from './config/index.js';
import { openDatabase, openRedis, openResponseCache } from './connections.js';
import { createRepositories, createServices } from './composition.js';
import type { Database } from './db/client.js';
import {
  emailNudge,
  openJobWork,
  queueHandle,
  scheduleAttempts,
  type JobLocks,
} from './job-work.js';
import { backgroundTasks } from './lifecycle.js';
import { openLiveBus } from './live-bus.js';
import { loadSpec } from './spec.js';
import { withTimeout } from './lib/timeout.js';
import { background } from './plugins/background.js';
import { metrics } from './plugins/metrics.js';
import type { WebhookTiming } from './webhook-work.js';

/** How long /ready waits for the database and the queue (asked at the same time). */
const READY_TIMEOUT_MS = 1000;

export interface WorkerDeps {
  /** An open database; the caller keeps ownership. Without it, one is opened (and closed). */
  database?: Database;
  logger?: FastifyServerOptions['logger'];
  /** Shorter webhook deadlines, retries and leases than production's, for tests. */
  webhookTiming?: WebhookTiming;
  /** Shorter job locks than BullMQ's 30 s, for tests of a worker that dies mid-job. */
  jobLocks?: JobLocks;
}

/**
 * The worker process (`npm run worker`): the job workers (webhook deliveries, emails, the
 * housekeeping), the events relay and the schedulers, on the same repositories and
 * services as the API (src/composition.ts), with `GET /health`, `/ready` and `/metrics`
 * on WORKER_PORT. It never listens itself.
 */
export async function buildWorker(config: Config, deps: WorkerDeps = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: deps.logger ?? false, return503OnClosing: false });
  try {
    const database = deps.database ?? (await openDatabase(app, config));
    const handle = queueHandle(app, config, database);
    const repositories = createRepositories(database.db, config, loadSpec());
    const services = createServices(app, config, repositories, {
      schedule: scheduleAttempts(handle),
      nudgeEmail: emailNudge(handle, config, app.log.child({ component: 'email' })),
      webhookTiming: deps.webhookTiming,
    });
    // The relay announces what it committed to the API instances' sockets.
    const bus = await openLiveBus(config, database, app.log.child({ component: 'live' }));
    app.addHook('onClose', () => bus.close());
    // The relay tells the response cache again of what each event changed.
    const redis =
      config.redis && config.cache.enabled ? await openRedis(app, config.redis.url) : null;
    const task = openJobWork(app, config, database, services, handle, {
      locks: deps.jobLocks,
      live: bus,
      cache: redis ? openResponseCache(app, config, redis) : undefined,
    });
    await app.register(metrics, {
      settings: config.metrics,
      rateLimitedOperations: [],
      sources: {
        pool: () => database.poolStats(),
        outboxDue: () => repositories.outbox.countDue(),
        jobDepth: async () => (await handle.get()).depth(),
      },
    });
    await app.register(background, { tasks: backgroundTasks(services, task) });
    probeRoutes(app, {
      database: () => database.ping(),
      queue: async () => (await handle.get()).ping(READY_TIMEOUT_MS),
      metricsToken: config.metrics.token !== undefined,
    });
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}

/** What an orchestrator asks the worker: alive (/health), able to work (/ready), metrics. */
function probeRoutes(
  app: FastifyInstance,
  checks: { database: () => Promise<void>; queue: () => Promise<void>; metricsToken: boolean },
): void {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/ready', async (_request, reply) => {
    if (closing) return reply.code(503).send({ status: 'closing' });
    const [database, queue] = await Promise.allSettled([
      withTimeout(checks.database(), READY_TIMEOUT_MS, 'no answer'),
      withTimeout(checks.queue(), READY_TIMEOUT_MS, 'no answer'),
    ]);
    const state = (result: PromiseSettledResult<void>) =>
      result.status === 'fulfilled' ? 'up' : 'down';
    const body = { database: state(database), queue: state(queue) };
    const ready = body.database === 'up' && body.queue === 'up';
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', ...body });
  });
  app.get('/metrics', async (request, reply) => {
    if (!app.metrics.enabled) return reply.code(404).send({ status: 'metrics are off' });
    // With METRICS_TOKEN, the worker asks for it as the API does; METRICS_PORT alone
    // means the scraper is inside: WORKER_PORT is not published.
    if (checks.metricsToken) {
      const allowed = await app.metrics.authenticate(request).then(
        () => true,
        () => false,
      );
      if (!allowed) return reply.code(401).send({ status: 'a valid metrics token is required' });
    }
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(await app.metrics.scrape());
  });
}
