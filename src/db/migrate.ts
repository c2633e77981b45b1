/**
 * npm run db:migrate: applies drizzle/ to DATABASE_URL, or to the embedded database in
 * DATA_DIR when it is unset (through the running server when there is one), and says what
 * it did.
 */
import { loadConfig, readEnvironment } from '../config.js';
import { createDatabase } from './client.js';
import { describeMigrations } from './migrations.js';

const config = loadConfig(readEnvironment());
const database = await createDatabase(config, { embedded: { label: 'npm run db:migrate' } });
try {
  const report = await database.migrate();
  console.log(`${describeMigrations(report)} (${database.location})`);
} finally {
  await database.close();
}
