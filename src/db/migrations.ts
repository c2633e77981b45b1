import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { migrationsFolder } from '../paths.js';

/** What a migration run did, in the names of drizzle/'s files. */
export interface MigrationReport {
  /** The migrations this run applied, oldest first. */
  applied: string[];
}

interface Journal {
  entries: { idx: number; when: number; tag: string }[];
}

/** Runs one SQL statement and gives its rows, whatever the driver. */
export type Query = (text: string, values?: unknown[]) => Promise<Record<string, unknown>[]>;

/** The `created_at` of every migration the database has (drizzle's own bookkeeping). */
async function recorded(query: Query): Promise<Set<number>> {
  const [table] = await query(`select to_regclass('drizzle.__drizzle_migrations') as t`);
  if (table?.t == null) return new Set();
  const rows = await query('select created_at from drizzle.__drizzle_migrations');
  return new Set(rows.map((row) => Number(row.created_at)));
}

/**
 * Runs drizzle's migrator and tells which migrations it applied: those recorded after it
 * ran and not before (drizzle's migrator itself says nothing).
 */
export async function migrateAndReport(
  query: Query,
  migrate: () => Promise<void>,
): Promise<MigrationReport> {
  const before = await recorded(query);
  // Nothing to apply: drizzle's migrator would still read and hash every file, and take
  // its table's lock, on every start of the embedded database (about 70 ms).
  const all = (await journal()).entries;
  if (all.every((entry) => before.has(entry.when))) return { applied: [] };
  await migrate();
  const after = await recorded(query);
  const applied = all
    .filter((entry) => after.has(entry.when) && !before.has(entry.when))
    .sort((a, b) => a.idx - b.idx)
    .map((entry) => entry.tag);
  return { applied };
}

async function journal(): Promise<Journal> {
  return JSON.parse(
    await readFile(join(migrationsFolder, 'meta', '_journal.json'), 'utf8'),
  ) as Journal;
}

/** The migrations of drizzle/ that the database has not had yet, oldest first. */
export async function pendingMigrations(query: Query): Promise<string[]> {
  const done = await recorded(query);
  return (await journal()).entries
    .filter((entry) => !done.has(entry.when))
    .sort((a, b) => a.idx - b.idx)
    .map((entry) => entry.tag);
}

/** "applied 2 migrations: 0000_users, 0001_posts", or "already up to date". */
export function describeMigrations(report: MigrationReport): string {
  const count = report.applied.length;
  if (count === 0) return 'already up to date';
  return `applied ${count} migration${count === 1 ? '' : 's'}: ${report.applied.join(', ')}`;
}
