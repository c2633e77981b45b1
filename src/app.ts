import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Config } from './config/index.js';
import { openDatabase, openRedis, openResponseCache } from './connections.js';
import type { Database } from './db/client.js';
import { restrictRoutesToSpec, type OpenApiDocument } from './http/contract.js';
import type { Handlers } from './http/handler-types.js';
import { createSecurityHandlers } from './http/security.js';
import type { SharedRedis } from './lib/redis.js';
import { createAccountHandlers } from './modules/account/handlers.js';
import { createAuthHandlers } from './modules/auth/handlers.js';
import { createAuthenticator } from './modules/auth/service.js';
import { openLive } from './live.js';
import type { EmailDelivery } from './modules/email/delivery.js';
import { createMetaHandlers } from './modules/meta/handlers.js';
import { createPostsHandlers } from './modules/posts/handlers.js';
import { createUsersHandlers } from './modules/users/handlers.js';
import { createWebhookAdminHandlers } from './modules/webhooks/handlers.js';
import type { WebhookDeliveriesPort } from './modules/webhooks/service.js';
import { registerPipeline } from './plugins/pipeline.js';
import { serverOptions } from './plugins/server-options.js';
import { createRepositories, createServices, type Services } from './composition.js';
import { emailNudge, openJobWork, queueHandle, scheduleAttempts } from './job-work.js';
import { addStartupWork, backgroundTasks } from './lifecycle.js';
import { loadSpec, publishedSpec } from './spec.js';
import type { WebhookTiming } from './webhook-work.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The email delivery, whose runs the `email-delivery` job makes wherever the jobs run
     * (job-work.ts); `deliverDue()` sends what is due now, in this process (tests).
     */
    emailDelivery: EmailDelivery;
  }
}

export interface AppDeps {
  /** An open database; the caller keeps ownership. Without it, buildApp opens (and closes) one. */
  database?: Database;
  logger?: FastifyServerOptions['logger'];
  /** The bundled spec; generated/openapi.json by default. */
  spec?: OpenApiDocument;
  /**
   * Resolves once the given database's schema is current, when the caller migrates it while
   * the app is built (server.ts does for the embedded database). Start-up work that writes
   * to the database (the ADMIN_EMAIL account, the jobs) waits for it.
   */
  migrated?: Promise<unknown>;
  /**
   * What the admin operations redeliverWebhookDelivery and sendWebhookTest call; the real
   * deliveries (on the job queue) by default.
   */
  webhookDeliveries?: WebhookDeliveriesPort;
  /** Shorter webhook deadlines, retries and leases than production's, for tests. */
  webhookTiming?: WebhookTiming;
}

/**
 * The composition root: config → database → repositories → services → handlers → the
 * plugins, the contract's routes last. It never listens (server.ts does).
 */
export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const spec = deps.spec ?? loadSpec();
  const app = Fastify(serverOptions(config, deps.logger ?? false));
  try {
    const database = deps.database ?? (await openDatabase(app, config));
    const redis = config.redis ? await openRedis(app, config.redis.url) : null;
    const cache = redis && config.cache.enabled ? openResponseCache(app, config, redis) : null;
    const repositories = createRepositories(database.db, config, spec);
    // Jobs run beside the requests (JOBS_IN_PROCESS, development): on PostgreSQL, BullMQ's
    // queue and worker get a connection each (its LISTEN is one more, outside the pool)
    // instead of up to four. Measured on a new embedded database: the peak of the first
    // seconds went from about 303 to 268 MB; the worker process keeps four.
    const queue = queueHandle(app, config, database, config.jobs.inProcess ? { poolMax: 1 } : {});
    const services = createServices(app, config, repositories, {
      schedule: scheduleAttempts(queue),
      nudgeEmail: emailNudge(queue, config, app.log.child({ component: 'email' })),
      webhookDeliveries: deps.webhookDeliveries,
      webhookTiming: deps.webhookTiming,
      changes: cache ?? undefined,
    });
    app.decorate('emailDelivery', services.email.delivery);
    // GET /api/live: the hub, its sockets, and the bus the relay announces events on.
    const live = await openLive(app, config, { database, repositories, services });
    // JOBS_IN_PROCESS: this process runs the jobs too (else npm run worker does).
    const jobs = config.jobs.inProcess
      ? openJobWork(app, config, database, services, queue, {
          live: live.bus,
          cache: cache ?? undefined,
        })
      : null;
    // What /openapi.json, /openapi.yaml and /docs publish: `servers` from PUBLIC_API_URL.
    const published = publishedSpec(spec, config.publicApiUrl);
    const handlers = createHandlers(app, { database, redis, published, services });
    // Every route from here on must be an operation of the spec or one it excludes.
    const checkRoutes = restrictRoutesToSpec(app, spec);
    await registerPipeline(app, config, {
      spec,
      published: published.document,
      handlers,
      securityHandlers: {
        ...createSecurityHandlers(
          createAuthenticator({ tokens: services.tokens, sessions: repositories.sessions }),
        ),
        metricsToken: (request) => app.metrics.authenticate(request),
      },
      background: [live.task, ...backgroundTasks(services, jobs)],
      live: live.plugin,
      liveDocument: live.document,
      migrated: deps.migrated,
      metricsSources: {
        pool: () => database.poolStats(),
        outboxDue: () => repositories.outbox.countDue(),
        jobDepth: jobs ? async () => (await queue.get()).depth() : undefined,
        live: () => live.hub.stats(),
      },
      redis,
      cache,
    });
    checkRoutes();
    const { users } = repositories;
    const { passwords } = services;
    addStartupWork(app, config, { database, users, passwords, migrated: deps.migrated });
  } catch (error) {
    // Whatever was opened (the database) is closed by the onClose hooks.
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}

function createHandlers(
  app: FastifyInstance,
  parts: {
    database: Database;
    redis: SharedRedis | null;
    published: ReturnType<typeof publishedSpec>;
    services: Services;
  },
): Handlers {
  const { database, redis, services } = parts;
  return {
    ...createMetaHandlers({
      ping: () => database.ping(),
      ...(redis ? { pingRedis: (timeoutMs: number) => redis.ping(timeoutMs) } : {}),
      closing: () => app.closing(),
      spec: parts.published,
      metrics: () => app.metrics.scrape(),
    }),
    ...createUsersHandlers(services.users),
    ...createAuthHandlers(services.auth, services.sessionsService),
    ...createAccountHandlers(services.account),
    ...createPostsHandlers(services.posts),
    ...createWebhookAdminHandlers(services.webhooks),
  };
}
