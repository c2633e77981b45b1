import type { Db } from './client.js';

/**
 * Hand-written statements for the hottest reads, sent by name. Drizzle's prepared
 * statements are named too, but every call goes through its session (a query config built
 * anew, rows fetched as arrays, then mapped column by column into objects, with a few
 * promises on the way): on a read that costs ~150 µs of the server's CPU in all, that was
 * ~10 µs. A statement here returns the driver's rows as they are (keyed by the column
 * aliases of its SQL, timestamps as Dates), and the repository maps them to the API's
 * shape once. Its SQL must name its columns exactly as the schema in src/db/schema does;
 * the repository tests run every one of them on PostgreSQL and on PGlite.
 */

/** How a database runs a statement by name; set for each Db by createDatabase. */
export interface StatementRunner {
  run<Row>(name: string, text: string, values: readonly unknown[]): Promise<Row[]>;
}

const runners = new WeakMap<object, StatementRunner>();

export function setStatementRunner(db: Db, runner: StatementRunner): void {
  runners.set(db, runner);
}

/**
 * A statement of `db` (the Db of createDatabase, not a transaction's): `name` must be
 * unique in the app, as PostgreSQL keeps one plan per name and connection.
 */
export function namedStatement<Row>(
  db: Db,
  name: string,
  text: string,
): (values: readonly unknown[]) => Promise<Row[]> {
  const runner = runners.get(db);
  if (!runner) throw new Error(`statement ${name}: this database runs no named statements`);
  return (values) => runner.run<Row>(name, text, values);
}
