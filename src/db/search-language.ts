/**
 * npm run db:search-language: makes the full-text search of posts follow SEARCH_LANGUAGE
 * (db/search.ts), on DATABASE_URL or the embedded database in DATA_DIR, and says what it
 * did. A step of the migrations, after `npm run db:migrate`: the migration Job runs both.
 */
import { loadConfig, readEnvironment } from '../config/index.js';
import { createDatabase } from './client.js';
import { explainConnectionError, StartupError } from './connection-errors.js';
import { exitExplained } from './failures.js';
import { setSearchLanguage } from './search.js';

await (async () => {
  const config = loadConfig(readEnvironment(), 'script');
  const database = await createDatabase(config, {
    embedded: { label: 'npm run db:search-language' },
  });
  try {
    const outcome = await setSearchLanguage(database, config.searchLanguage).catch(
      (error: unknown) => {
        const explained = explainConnectionError(error, database.location);
        throw explained ? new StartupError(explained) : error;
      },
    );
    const said = {
      rebuilt: 'the search index of posts was rebuilt for it',
      unchanged: 'the search index of posts already uses it',
    };
    console.log(
      `SEARCH_LANGUAGE=${config.searchLanguage}: ${said[outcome]} (${database.location})`,
    );
  } finally {
    await database.close();
  }
})().catch(exitExplained('npm run db:search-language'));
