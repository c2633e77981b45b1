/**
 * npm run db:migrate: applies drizzle/ to DATABASE_URL, or to the embedded database in
 * DATA_DIR when it is unset.
 */
import { loadConfig, readEnvironment } from '../config.js';
import { createDatabase } from './client.js';

const config = loadConfig(readEnvironment());
const database = await createDatabase(config);
try {
  await database.migrate();
  console.log(
    `migrations applied (${database.kind === 'postgres' ? 'DATABASE_URL' : config.dataDir})`,
  );
} finally {
  await database.close();
}
