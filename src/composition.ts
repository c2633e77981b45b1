import { noChanges, type Changes } from './lib/changes.js';
import type { FastifyInstance } from 'fastify';
import type { Config } from './config/index.js';
import type { Db } from './db/client.js';
import { createPasswordHasher } from './lib/passwords.js';
import { createAccountRepository } from './modules/account/repository.js';
import { createAccountService } from './modules/account/service.js';
import { createLoginFailuresRepository } from './modules/auth/login-failures-repository.js';
import { createLoginLimits } from './modules/auth/login-limits.js';
import { createAuthService } from './modules/auth/service.js';
import { createSessionsRepository } from './modules/auth/sessions-repository.js';
import { createSessionsService } from './modules/auth/sessions-service.js';
import { createTokenService } from './modules/auth/tokens.js';
import { createAccountMail } from './modules/email/account-mail.js';
import { createEmailDelivery } from './modules/email/delivery.js';
import { createOutboxRepository } from './modules/email/outbox.js';
import { createLogTransport, createSmtpTransport } from './modules/email/transports.js';
import { createPostsRepository } from './modules/posts/repository.js';
import { createPostsService } from './modules/posts/service.js';
import { createUsersRepository } from './modules/users/repository.js';
import { createUsersService } from './modules/users/service.js';
import type { OpenApiDocument } from './http/contract.js';
import { createWebhookPayloadCheck } from './http/webhook-payloads.js';
import { createEventsRepository } from './modules/events/repository.js';
import { createDeliveriesRepository } from './modules/webhooks/deliveries-repository.js';
import type { ScheduleAttempt } from './modules/webhooks/delivery.js';
import { createWebhookDeliveriesPort } from './modules/webhooks/port.js';
import { createWebhookAdminRepository } from './modules/webhooks/repository.js';
import {
  createWebhookAdminService,
  type WebhookDeliveriesPort,
} from './modules/webhooks/service.js';
import { createWebhookWork, type WebhookTiming } from './webhook-work.js';

/**
 * The repositories and services, built the same way for the API (app.ts) and the worker
 * process (worker.ts): each gets its dependencies explicitly, nothing is global.
 */

export type Repositories = ReturnType<typeof createRepositories>;
export type Services = ReturnType<typeof createServices>;

export function createRepositories(db: Db, config: Config, spec: OpenApiDocument) {
  // Outside production every event's payload is checked against the spec's webhooks, as
  // responses are against its operations: a payload that breaks it fails its change.
  const check = config.responseValidation ? createWebhookPayloadCheck(spec) : undefined;
  const events = createEventsRepository(check ? { check } : {});
  return {
    db,
    check,
    events,
    users: createUsersRepository(db, events),
    sessions: createSessionsRepository(db, config.sessions),
    failures: createLoginFailuresRepository(db, { windowSeconds: config.loginLimit.windowSeconds }),
    accounts: createAccountRepository(db),
    posts: createPostsRepository(db, { searchLanguage: config.searchLanguage, events }),
    outbox: createOutboxRepository(db),
    webhooks: createWebhookAdminRepository(db),
    deliveries: createDeliveriesRepository(db),
  };
}

/**
 * What the services need from outside: how to queue a webhook attempt, and an email
 * delivery run (job-work.ts); in tests, a stand-in port and shorter webhook timing.
 */
export interface ServiceParts {
  schedule: ScheduleAttempt;
  /** Called after a commit that queued mail (emailNudge). */
  nudgeEmail: () => void;
  webhookDeliveries?: WebhookDeliveriesPort | undefined;
  webhookTiming?: WebhookTiming | undefined;
  /** Told of the changes readers see (the response cache); nobody without one. */
  changes?: Changes | undefined;
}

export function createServices(
  app: FastifyInstance,
  config: Config,
  repositories: Repositories,
  parts: ServiceParts,
) {
  const { users, sessions, failures, outbox } = repositories;
  const changes = parts.changes ?? noChanges;
  const { bcryptCost: cost, bcryptThreads: threads, bcryptNice: nice } = config;
  const passwords = createPasswordHasher({ cost, threads, nice });
  app.addHook('onClose', () => passwords.close());
  const tokens = createTokenService(app, config.jwt.expiresInSeconds);
  const loginLimits = createLoginLimits({ failures, maxFailures: config.loginLimit.maxFailures });
  const email = createEmail(app, config, outbox);
  const mail = createAccountMail({ ...config.email, nudge: parts.nudgeEmail });
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
    users: createUsersService({
      users,
      passwords,
      mail,
      sessions,
      posts: repositories.posts,
      changes,
    }),
    account: createAccountService({ accounts: repositories.accounts, passwords, mail }),
    posts: createPostsService({ posts: repositories.posts, changes }),
    ...createWebhooks(app, config, repositories, parts),
  };
}

/** The deliveries (the jobs' side) and the admin operations (the API's side). */
function createWebhooks(
  app: FastifyInstance,
  config: Config,
  repositories: Repositories,
  parts: ServiceParts,
) {
  const { db, events, deliveries, check } = repositories;
  const webhookDelivery = createWebhookWork(app, config, {
    db,
    deliveries,
    schedule: parts.schedule,
    check,
    timing: parts.webhookTiming,
  });
  const port =
    parts.webhookDeliveries ??
    createWebhookDeliveriesPort({ db, events, delivery: webhookDelivery });
  const webhooks = createWebhookAdminService({
    endpoints: repositories.webhooks,
    deliveries: port,
    production: config.env === 'production',
    allowHttp: config.webhooks.allowHttp,
    secretRotationGraceSeconds: config.webhooks.secretRotationGraceSeconds,
  });
  return { webhookDelivery, webhooks };
}

/**
 * Emails are queued in the outbox by the transaction that causes them and sent by the
 * `email-delivery` job's runs of this delivery (job-work.ts), in whichever process runs
 * the jobs; runs in several processes at once send no email twice.
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
  const delivery = createEmailDelivery({
    outbox,
    transport,
    log,
    onDead,
    maxAttempts: config.email.maxAttempts,
  });
  return { delivery, transport };
}
