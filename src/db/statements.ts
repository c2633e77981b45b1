import { Column, SQL, fillPlaceholders, is } from 'drizzle-orm';

/**
 * Statements for the hottest reads: written with Drizzle's query builder, from the schema's
 * objects, then sent by name and read without Drizzle's session.
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

/**
 * How a database runs a statement by name; set by createDatabase for each Drizzle database
 * it makes (typed `object` here: this module is below client.ts).
 */
export interface StatementRunner {
  /** Rows as arrays, in the order of the statement's columns. */
  run(name: string, text: string, values: readonly unknown[]): Promise<readonly unknown[][]>;
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

/** A value as the runner reads it: a timestamp comes as the API's string, not a Date. */
export type WireValue<T> = T extends Date ? string : T;
/** A row of a query as `preparedRows` gives it. */
export type WireRow<Row> = { [K in keyof Row]: WireValue<Row[K]> };
/** A row as either way of reading it gives it: Drizzle's own (Dates) or `preparedRows`'. */
export type EitherRow<Row> = { [K in keyof Row]: Row[K] | WireValue<Row[K]> };

/**
 * The column types whose values the driver gives as Drizzle itself would map them (a
 * timestamptz aside, which comes as a string, as WireRow says). A column of any other type
 * (a bigint in number mode, a json) is refused when the statement is made, not misread.
 */
const wireSafeColumns = new Set(['PgUUID', 'PgVarchar', 'PgText', 'PgInteger', 'PgBoolean']);

function checkField(name: string, key: string, field: unknown): void {
  if (is(field, SQL) || is(field, SQL.Aliased)) return;
  if (is(field, Column)) {
    const column = field as Column & { withTimezone?: boolean; mode?: string };
    if (wireSafeColumns.has(column.columnType)) return;
    if (column.columnType === 'PgTimestamp' && column.withTimezone) return;
  }
  throw new Error(`statement ${name}: ${key} is not a column or expression it can read as is`);
}

/**
 * A read written with Drizzle's query builder (its columns and tables the schema's objects,
 * its values `sql.placeholder`s filled on every call), sent by name without Drizzle's
 * session. `fields` is the selection the query was built with (its `select` or
 * `returning` object, flat): the driver gives each row as an array in its order, and the
 * row is keyed by its names. The row type is the query's own, as Drizzle infers it from
 * the schema, with timestamps as strings: renaming a column in src/db/schema fails the
 * type check of every statement that reads it. `name` must be unique in the app:
 * PostgreSQL keeps one plan per name and connection.
 */
export function preparedRows<
  Query extends PromiseLike<readonly object[]> & { toSQL(): { sql: string; params: unknown[] } },
>(
  db: object,
  name: string,
  query: Query,
  fields: { [K in keyof Awaited<Query>[number]]: unknown },
): (placeholders?: Record<string, unknown>) => Promise<WireRow<Awaited<Query>[number]>[]> {
  const runner = runnerOf(db, name);
  const keys = Object.keys(fields);
  for (const key of keys) checkField(name, key, (fields as Record<string, unknown>)[key]);
  const { sql: text, params } = query.toSQL();
  return async (placeholders = {}) => {
    const rows = await runner.run(name, text, fillPlaceholders(params, placeholders));
    return rows.map((values) => {
      const row: Record<string, unknown> = {};
      for (let i = 0; i < keys.length; i += 1) row[keys[i]!] = values[i];
      return row as WireRow<Awaited<Query>[number]>;
    });
  };
}
