/**
 * npm run db:seed: loads demo users and a demo admin, admin@example.com (all with the
 * password "correct horse battery staple"), into DATABASE_URL, or into the embedded
 * database in DATA_DIR. Users that exist already are left as they are (an existing
 * admin@example.com is made an admin, its password unchanged), so it can run again safely.
 */
import { loadConfig, readEnvironment } from '../src/config.js';
import { createDatabase } from '../src/db/client.js';
import { createPasswordHasher } from '../src/lib/passwords.js';
import { ensureAdminAccount } from '../src/modules/users/admin-account.js';
import { createUsersRepository } from '../src/modules/users/repository.js';
import { createUsersService } from '../src/modules/users/service.js';

const password = 'correct horse battery staple';
const demoAdmin = { email: 'admin@example.com', username: 'admin' };
const demoUsers = [
  { email: 'ada@example.com', username: 'ada', firstName: 'Ada', lastName: 'Lovelace' },
  { email: 'grace@example.com', username: 'grace', firstName: 'Grace', lastName: 'Hopper' },
  { email: 'alan@example.com', username: 'alan', firstName: 'Alan', lastName: 'Turing' },
  {
    email: 'katherine@example.com',
    username: 'katherine',
    firstName: 'Katherine',
    lastName: 'Johnson',
  },
  { email: 'edsger@example.com', username: 'edsger', firstName: 'Edsger', lastName: 'Dijkstra' },
];

const config = loadConfig(readEnvironment());
const database = await createDatabase(config, { embedded: { label: 'npm run db:seed' } });
const passwords = createPasswordHasher({ cost: config.bcryptCost, threads: 1 });
try {
  await database.migrate();
  const repository = createUsersRepository(database.db);
  const users = createUsersService({
    users: repository,
    passwords,
    // Demo accounts at example.com: no verification email is queued for them.
    mail: { sendVerification: async () => false, nudge: () => undefined },
  });
  for (const user of demoUsers) {
    const created = await users.create({ ...user, password });
    if (created.ok) console.log(`created ${user.email}`);
    else if (created.error.code === 'CONFLICT') console.log(`exists  ${user.email}`);
    else throw created.error;
  }
  const admin = await ensureAdminAccount(
    { users: repository, passwords },
    { ...demoAdmin, password },
  );
  const said = { created: 'created', promoted: 'promoted', unchanged: 'exists ' };
  console.log(`${said[admin.action]} ${admin.user.email} (admin)`);
  console.log(`\nLog in with any of them and the password "${password}".`);
} finally {
  await passwords.close();
  await database.close();
}
