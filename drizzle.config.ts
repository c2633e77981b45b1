import { defineConfig } from 'drizzle-kit';

// Used by `npm run db:generate` (no database needed) and `npm run db:studio`, which opens
// DATABASE_URL, or the embedded database in DATA_DIR (default ./.data) when it is unset.
const databaseUrl = process.env.DATABASE_URL;

export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema/index.ts',
  out: './drizzle',
  strict: true,
  verbose: true,
  ...(databaseUrl
    ? { dbCredentials: { url: databaseUrl } }
    : { driver: 'pglite', dbCredentials: { url: process.env.DATA_DIR ?? './.data' } }),
});
