import { defineConfig } from 'drizzle-kit';

// Used by `npm run db:generate` (no database needed) and by Drizzle Studio, which
// `npm run db:studio` (scripts/studio.ts) starts with DATABASE_URL set: to the PostgreSQL
// server, or to the socket of the embedded database's owner, so that Studio never opens
// the embedded folder itself (a second PGlite on a folder corrupts it).
const databaseUrl = process.env.DATABASE_URL;

export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema/index.ts',
  out: './drizzle',
  strict: true,
  verbose: true,
  ...(databaseUrl ? { dbCredentials: { url: databaseUrl } } : {}),
});
