/**
 * npm run db:seed: loads demo users (password "correct horse battery staple") into
 * DATABASE_URL, or into the embedded database in DATA_DIR. Users that exist already are
 * left as they are, so it can run again safely.
 */
import { loadConfig, readEnvironment } from '../src/config.js';
import { createDatabase } from '../src/db/client.js';
import { createPasswordHasher } from '../src/lib/passwords.js';
import { createUsersRepository } from '../src/modules/users/repository.js';
import { createUsersService } from '../src/modules/users/service.js';

const password = 'correct horse battery staple';
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
  const users = createUsersService({
    users: createUsersRepository(database.db),
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
  console.log(`\nLog in with any of them and the password "${password}".`);
} finally {
  await passwords.close();
  await database.close();
}
