import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Config } from './config/index.js';
import { openDatabase, openRedis } from './connections.js';
import type { Db, Database } from './db/client.js';
import { restrictRoutesToSpec, type OpenApiDocument } from './http/contract.js';
import type { Handlers } from './http/handler-types.js';
import { createSecurityHandlers } from './http/security.js';
import { createWebhookPayloadCheck } from './http/webhook-payloads.js';
import { createPasswordHasher } from './lib/passwords.js';
import type { SharedRedis } from './lib/redis.js';
import { createAccountHandlers } from './modules/account/handlers.js';
import { createAccountRepository } from './modules/account/repository.js';
import { createAccountService } from './modules/account/service.js';
import { createAuthHandlers } from './modules/auth/handlers.js';
import { createLoginFailuresRepository } from './modules/auth/login-failures-repository.js';
import { createLoginLimits } from './modules/auth/login-limits.js';
import { createAuthService, createAuthenticator } from './modules/auth/service.js';
import { createSessionsRepository } from './modules/auth/sessions-repository.js';
import { createSessionsService } from './modules/auth/sessions-service.js';
import { createTokenService } from './modules/auth/tokens.js';
import { createAccountMail } from './modules/email/account-mail.js';
import { createEmailDelivery, type EmailDelivery } from './modules/email/delivery.js';
import { createOutboxRepository } from './modules/email/outbox.js';
import { createLogTransport, createSmtpTransport } from './modules/email/transports.js';
import { createEventsRepository } from './modules/events/repository.js';
import { createMetaHandlers } from './modules/meta/handlers.js';
import { createPostsHandlers } from './modules/posts/handlers.js';
import { createPostsRepository } from './modules/posts/repository.js';
import { createPostsService } from './modules/posts/service.js';
import { createUsersHandlers } from './modules/users/handlers.js';
import { createUsersRepository } from './modules/users/repository.js';
import { createUsersService } from './modules/users/service.js';
import { createWebhookAdminHandlers } from './modules/webhooks/handlers.js';
import { createWebhookAdminRepository } from './modules/webhooks/repository.js';
import {
  createWebhookAdminService,
  type WebhookDeliveriesPort,
} from './modules/webhooks/service.js';
import { registerPipeline } from './plugins/pipeline.js';
import { serverOptions } from './plugins/server-options.js';
import { addStartupWork, backgroundTasks } from './lifecycle.js';
import { loadSpec, publishedSpec } from './spec.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The email delivery loop: it polls on its own (EMAIL_POLL_INTERVAL) from `ready` to
     * `close`; `deliverDue()` sends what is due now (tests, with the poll off).
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
   * to the database (the ADMIN_EMAIL account, the email loop) waits for it.
   */
  migrated?: Promise<unknown>;
  /**
   * What queues webhook deliveries for the admin operations (redeliverWebhookDelivery,
   * sendWebhookTest). Without it those two answer 500: nothing would send what they queue.
   */
  webhookDeliveries?: WebhookDeliveriesPort;
}

/** The stand-in while no queue is wired: it refuses loudly rather than pretend to send. */
const unwiredWebhookDeliveries: WebhookDeliveriesPort = {
  redeliver: () =>
    Promise.reject(new Error('webhook deliveries are not wired (AppDeps.webhookDeliveries)')),
  sendTest: () =>
    Promise.reject(new Error('webhook deliveries are not wired (AppDeps.webhookDeliveries)')),
};

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
    const repositories = createRepositories(database.db, config, spec);
    const webhookDeliveries = deps.webhookDeliveries ?? unwiredWebhookDeliveries;
    const services = createServices(app, config, repositories, webhookDeliveries);
    app.decorate('emailDelivery', services.email.delivery);
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
      background: backgroundTasks(config, database.db, services),
      migrated: deps.migrated,
      metricsSources: {
        pool: () => database.poolStats(),
        outboxDue: () => repositories.outbox.countDue(),
      },
      redis,
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

type Repositories = ReturnType<typeof createRepositories>;
type Services = ReturnType<typeof createServices>;

function createRepositories(db: Db, config: Config, spec: OpenApiDocument) {
  // Outside production every event's payload is checked against the spec's webhooks, as
  // responses are against its operations: a payload that breaks it fails its change.
  const events = createEventsRepository(
    config.responseValidation ? { check: createWebhookPayloadCheck(spec) } : {},
  );
  return {
    events,
    users: createUsersRepository(db, events),
    sessions: createSessionsRepository(db, config.sessions),
    failures: createLoginFailuresRepository(db, { windowSeconds: config.loginLimit.windowSeconds }),
    accounts: createAccountRepository(db),
    posts: createPostsRepository(db, { searchLanguage: config.searchLanguage, events }),
    outbox: createOutboxRepository(db),
    webhooks: createWebhookAdminRepository(db),
  };
}

function createServices(
  app: FastifyInstance,
  config: Config,
  repositories: Repositories,
  webhookDeliveries: WebhookDeliveriesPort,
) {
  const { users, sessions, failures, outbox } = repositories;
  const { bcryptCost: cost, bcryptThreads: threads, bcryptNice: nice } = config;
  const passwords = createPasswordHasher({ cost, threads, nice });
  app.addHook('onClose', () => passwords.close());
  const tokens = createTokenService(app, config.jwt.expiresInSeconds);
  const loginLimits = createLoginLimits({ failures, maxFailures: config.loginLimit.maxFailures });
  const email = createEmail(app, config, outbox);
  const mail = createAccountMail({ ...config.email, nudge: () => email.delivery.nudge() });
  const sessionsService = createSessionsService({
    sessions,
    users,
    passwords,
    tokens,
    loginLimits,
  });
  return {
    passwords,
    tokens,
    loginLimits,
    email,
    sessionsService,
    auth: createAuthService({ users, passwords, sessions: sessionsService, loginLimits }),
    users: createUsersService({ users, passwords, mail, sessions, posts: repositories.posts }),
    account: createAccountService({ accounts: repositories.accounts, passwords, mail }),
    posts: createPostsService({ posts: repositories.posts }),
    webhooks: createWebhookAdminService({
      endpoints: repositories.webhooks,
      deliveries: webhookDeliveries,
      production: config.env === 'production',
      allowHttp: config.webhooks.allowHttp,
      secretRotationGraceSeconds: config.webhooks.secretRotationGraceSeconds,
    }),
  };
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

/**
 * Emails are queued in the outbox by the transaction that causes them and sent by this
 * loop; with several instances, each runs one and no email goes out twice.
 */
function createEmail(app: FastifyInstance, config: Config, outbox: Repositories['outbox']) {
  const log = app.log.child({ component: 'email' });
  const { smtpUrl, from, logLinks } = config.email;
  const transport = smtpUrl
    ? createSmtpTransport(smtpUrl, from)
    : createLogTransport(log, { withLinks: logLinks });
  if (transport.name === 'log' && !logLinks) {
    log.warn(
      'SMTP_URL is not set: emails are not sent, only logged, without their links (EMAIL_LOG_LINKS=true writes them to the log)',
    );
  }
  const onDead = (reason: 'attempts' | 'expired', count: number) =>
    app.metrics.emailsDead(reason, count);
  const delivery = createEmailDelivery({ ...config.email, outbox, transport, log, onDead });
  return { delivery, transport };
}
