import type { FastifyInstance } from 'fastify';
import type { Config } from './config/index.js';
import type { Database } from './db/client.js';
import { StartupError } from './db/connection-errors.js';
import { checkSearchLanguage } from './db/search.js';
import type { PasswordHasher } from './lib/passwords.js';
import type { EmailDelivery } from './modules/email/delivery.js';
import type { EmailTransport } from './modules/email/transports.js';
import { ensureAdminAccount } from './modules/users/admin-account.js';
import type { UsersRepository } from './modules/users/repository.js';
import type { BackgroundTask } from './plugins/background.js';

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

/**
 * The background work, started and stopped with the app (src/plugins/background.ts): the
 * jobs (src/job-work.ts) when this process runs them, and the email delivery their
 * `email-delivery` job runs (or `deliverDue`, in tests).
 */
export function backgroundTasks(
  services: { email: { delivery: EmailDelivery; transport: EmailTransport } },
  jobs: BackgroundTask | null,
): BackgroundTask[] {
  const { email } = services;
  return [
    ...(jobs ? [jobs] : []),
    // Stopped first (last started): a delivery run under way ends after the batch in hand,
    // sent and marked, instead of going on with the backlog while the workers close; the
    // outbox keeps the rest for the next run, here or in another process.
    {
      name: 'email delivery',
      start: () => async () => {
        await email.delivery.stop();
        await email.transport.close();
      },
    },
  ];
}
