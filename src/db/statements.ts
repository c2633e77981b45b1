import { fillPlaceholders } from 'drizzle-orm';

/**
 * Statements for the hottest reads, sent by name and read without Drizzle's session.
 * Drizzle's prepared statements are named too, but every call builds a query config anew,
 * fetches rows as arrays and maps them column by column (a timestamp through a Date), with
 * a few promises on the way: in profiles under load, ~7 µs of getUser's ~150 µs of CPU,
 * and ~65 µs of a page of 20 posts. Here the driver's rows come as they are, and a
 * timestamp comes as the API sends it (an RFC 3339 string in UTC, with milliseconds),
 * so the repository maps each row once. Every statement runs in the repositories'
 * integration tests (on PostgreSQL with TEST_DATABASE_URL, as CI runs them; on an
 * in-memory PGlite without it).
 */

/** The type of `timestamp with time zone` (timestamptz). */
export const TIMESTAMPTZ_OID = 1184;

/** A timestamp as both the API and toISOString write it: 2024-04-28T10:53:00.120Z. */
const utcText = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?\+00$/;
const anyText = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d{1,6})?)([+-]\d\d)(:\d\d)?$/;

/**
 * A timestamptz as PostgreSQL writes it (DateStyle ISO) in the API's form. In a session
 * whose TimeZone is UTC (PGlite's, and most servers') that is a rearrangement of the text;
 * any other offset goes through a Date. The columns hold years 1 to 9999 (no BC, no
 * five-digit year) and milliseconds at most; a finer fraction is cut to milliseconds, as
 * a Date would.
 */
export function isoInstant(text: string): string {
  const utc = utcText.exec(text);
  if (utc) {
    const fraction = utc[3] === undefined ? '000' : utc[3].padEnd(3, '0').slice(0, 3);
    return `${utc[1]}T${utc[2]}.${fraction}Z`;
  }
  const other = anyText.exec(text);
  const date = other ? new Date(`${other[1]}T${other[2]}${other[3]}${other[4] ?? ':00'}`) : null;
  if (!date || Number.isNaN(date.getTime())) {
    throw new Error(`Not a timestamp this server can read: ${text}`);
  }
  return date.toISOString();
}

/** An instant of a row: a Date from Drizzle, already a string from a statement here. */
export function isoOf(instant: Date | string): string {
  return typeof instant === 'string' ? instant : instant.toISOString();
}

export type RowMode = 'object' | 'array';

/**
 * How a database runs a statement by name; set by createDatabase for each Drizzle database
 * it makes (typed `object` here: this module is below client.ts).
 */
export interface StatementRunner {
  run(
    name: string,
    text: string,
    values: readonly unknown[],
    rowMode: RowMode,
  ): Promise<readonly unknown[]>;
}

const runners = new WeakMap<object, StatementRunner>();

export function setStatementRunner(db: object, runner: StatementRunner): void {
  runners.set(db, runner);
}

function runnerOf(db: object, name: string): StatementRunner {
  const runner = runners.get(db);
  if (!runner) throw new Error(`statement ${name}: this database runs no named statements`);
  return runner;
}

/**
 * A hand-written statement of `db` (the Db of createDatabase, not a transaction's); rows
 * are objects keyed by the column aliases of its SQL. `name` must be unique in the app:
 * PostgreSQL keeps one plan per name and connection.
 */
export function namedStatement<Row>(
  db: object,
  name: string,
  text: string,
): (values: readonly unknown[]) => Promise<Row[]> {
  const runner = runnerOf(db, name);
  return (values) => runner.run(name, text, values, 'object') as Promise<Row[]>;
}

/**
 * A statement Drizzle wrote (a query builder, its placeholders filled on every call);
 * rows are arrays in the order of the query's selection, as Drizzle itself reads them.
 */
export function namedQuery(
  db: object,
  name: string,
  query: { toSQL(): { sql: string; params: unknown[] } },
): (placeholders: Record<string, unknown>) => Promise<unknown[][]> {
  const runner = runnerOf(db, name);
  const { sql: text, params } = query.toSQL();
  return (placeholders) =>
    runner.run(name, text, fillPlaceholders(params, placeholders), 'array') as Promise<unknown[][]>;
}
