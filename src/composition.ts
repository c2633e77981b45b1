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

/**
 * The repositories and services, built the same way for the API (app.ts) and the worker
 * process (worker.ts): each gets its dependencies explicitly, nothing is global.
 */

export type Repositories = ReturnType<typeof createRepositories>;
export type Services = ReturnType<typeof createServices>;

export function createRepositories(db: Db, config: Config) {
  return {
    users: createUsersRepository(db),
    sessions: createSessionsRepository(db, config.sessions),
    failures: createLoginFailuresRepository(db, { windowSeconds: config.loginLimit.windowSeconds }),
    accounts: createAccountRepository(db),
    posts: createPostsRepository(db, { searchLanguage: config.searchLanguage }),
    outbox: createOutboxRepository(db),
  };
}

export function createServices(app: FastifyInstance, config: Config, repositories: Repositories) {
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
    users: createUsersService({ users, passwords, mail, sessions }),
    account: createAccountService({ accounts: repositories.accounts, passwords, mail }),
    posts: createPostsService({ posts: repositories.posts }),
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
