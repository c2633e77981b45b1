import type { FastifyInstance } from 'fastify';
import type { Config } from './config/index.js';
import type { Database, Db } from './db/client.js';
import { StartupError } from './db/connection-errors.js';
import { checkSearchLanguage } from './db/search.js';
import { deleteEndedRows } from './modules/housekeeping/ended-rows.js';
import type { PasswordHasher } from './lib/passwords.js';
import type { LoginLimits } from './modules/auth/login-limits.js';
import type { EmailDelivery } from './modules/email/delivery.js';
import type { EmailTransport } from './modules/email/transports.js';
import { ensureAdminAccount } from './modules/users/admin-account.js';
import type { UsersRepository } from './modules/users/repository.js';
import { periodic, type BackgroundTask } from './plugins/background.js';

/**
 * What the app does besides answering requests: the work it does once before it is ready,
 * and the background work it keeps doing while it runs.
 */

/**
 * Start-up work: the server is not ready until it is done, once the schema is current
 * (`migrated`: see AppDeps).
 */
export function addStartupWork(
  app: FastifyInstance,
  config: Config,
  deps: {
    database: Database;
    users: UsersRepository;
    passwords: PasswordHasher;
    migrated: Promise<unknown> | undefined;
  },
): void {
  const { database, migrated } = deps;
  // Posts' search column must follow SEARCH_LANGUAGE (npm run db:search-language sets it).
  app.addHook('onReady', async () => {
    await migrated;
    try {
      await checkSearchLanguage(database.db, config.searchLanguage);
    } catch (error) {
      if (error instanceof StartupError) throw error;
      // The server starts without its database (and answers 503 until it is back).
      app.log.warn({ err: error }, 'SEARCH_LANGUAGE: could not check the search index of posts');
    }
  });
  const admin = config.admin;
  if (!admin) return;
  app.addHook('onReady', async () => {
    await migrated;
    const { action, user } = await ensureAdminAccount(deps, admin);
    const facts = { userId: user.id, email: user.email, username: user.username };
    const said = {
      created: 'ADMIN_EMAIL: admin account created',
      promoted: 'ADMIN_EMAIL: existing account promoted to admin (its password is unchanged)',
      unchanged: 'ADMIN_EMAIL: the account is an admin already',
    };
    app.log.info(facts, said[action]);
    if (!user.isActive) app.log.warn(facts, 'ADMIN_EMAIL: the admin account is disabled');
  });
}

/** The background work, started and stopped with the app (src/plugins/background.ts). */
export function backgroundTasks(
  config: Config,
  db: Db,
  services: {
    loginLimits: LoginLimits;
    email: { delivery: EmailDelivery; transport: EmailTransport };
  },
): BackgroundTask[] {
  const { loginLimits, email } = services;
  return [
    {
      name: 'login failures cleanup',
      start: (log) =>
        loginLimits.startCleanup({
          everyMs: Math.min(Math.max(config.loginLimit.windowSeconds, 60), 3600) * 1000,
          onError: (error) => log.warn({ err: error }, 'clearing expired login failures failed'),
        }),
    },
    // Ended sessions (their refresh tokens with them) and used or expired email tokens are
    // deleted a day after their end, a batch every ten minutes.
    periodic(
      'housekeeping',
      10 * 60_000,
      () => deleteEndedRows(db, { idleTimeoutSeconds: config.sessions.idleTimeoutSeconds }),
      'deleting ended sessions and tokens failed',
    ),
    {
      name: 'email delivery',
      start: () => {
        email.delivery.start();
        // The batch in hand is sent and marked before the database closes (onClose).
        return async () => {
          await email.delivery.stop();
          await email.transport.close();
        };
      },
    },
  ];
}
