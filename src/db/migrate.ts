/**
 * npm run db:migrate: applies drizzle/ to DATABASE_URL, or to the embedded database in
 * DATA_DIR when it is unset (through the running server when there is one), and says what
 * it did.
 */
import { loadConfig, readEnvironment } from '../config/index.js';
import { createDatabase } from './client.js';
import { explainConnectionError, StartupError } from './connection-errors.js';
import { exitExplained } from './failures.js';
import { describeMigrations } from './migrations.js';

await (async () => {
  const config = loadConfig(readEnvironment(), 'script');
  const database = await createDatabase(config, { embedded: { label: 'npm run db:migrate' } });
  try {
    const report = await database.migrate().catch((error: unknown) => {
      const explained = explainConnectionError(error, database.location);
      throw explained ? new StartupError(explained) : error;
    });
    console.log(`${describeMigrations(report)} (${database.location})`);
  } finally {
    await database.close();
  }
})().catch(exitExplained('npm run db:migrate'));
