import { resolve } from 'node:path';
import { defineArea } from './area.js';

export interface DatabaseSettings {
  /** Unset: the embedded PostgreSQL server on `dataDir`. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly db: {
    readonly poolMax: number;
    readonly connectTimeoutMs: number;
    readonly statementTimeoutMs: number;
  };
  /**
   * The PostgreSQL text search configuration of posts' full-text search ('simple': words as
   * written, no stemming; 'english', 'portuguese', …: stemmed and without stop words).
   */
  readonly searchLanguage: string;
}

export const databaseArea = defineArea({
  title: 'Database',
  properties: {
    DATABASE_URL: {
      type: 'string',
      pattern: '^postgres(ql)?://',
      description:
        'PostgreSQL connection string; unset: the embedded PostgreSQL server in `DATA_DIR`',
    },
    DATA_DIR: {
      type: 'string',
      minLength: 1,
      default: './.data',
      description:
        "the embedded database's folder (its socket lives in it: keep the path under 80 characters)",
    },
    DB_POOL_MAX: {
      type: 'integer',
      minimum: 1,
      maximum: 1000,
      default: 10,
      description: 'the most connections the PostgreSQL pool keeps open at once',
    },
    DB_CONNECT_TIMEOUT_MS: {
      type: 'integer',
      minimum: 100,
      default: 5000,
      description:
        'how long to wait for a new PostgreSQL connection, in milliseconds; a database that does not answer gives 503, never a hung request',
    },
    DB_STATEMENT_TIMEOUT_MS: {
      type: 'integer',
      minimum: 100,
      default: 10000,
      description:
        'the longest a statement may run, in milliseconds (the client gives up a second later); then the request gets 503',
    },
    SEARCH_LANGUAGE: {
      type: 'string',
      pattern: '^[a-z][a-z0-9_]{0,62}$',
      default: 'simple',
      description:
        "the PostgreSQL text search configuration of posts' search: `simple` (words as written) or a language such as `english` (stemming, stop words); a change takes `npm run db:search-language` before the next start (the server refuses to start until then)",
    },
  },
  settings: (values): DatabaseSettings => ({
    databaseUrl: values.DATABASE_URL,
    dataDir: values.DATA_DIR.startsWith('memory://') ? values.DATA_DIR : resolve(values.DATA_DIR),
    db: Object.freeze({
      poolMax: values.DB_POOL_MAX,
      connectTimeoutMs: values.DB_CONNECT_TIMEOUT_MS,
      statementTimeoutMs: values.DB_STATEMENT_TIMEOUT_MS,
    }),
    searchLanguage: values.SEARCH_LANGUAGE,
  }),
});
