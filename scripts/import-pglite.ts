/**
 * npm run db:import-pglite -- [folder]: brings the data of an embedded database made by
 * the earlier embedded engine (PGlite, PostgreSQL compiled to WebAssembly, which kept its
 * files at the top of DATA_DIR) into the embedded PostgreSQL server that replaced it.
 *
 * PostgreSQL cannot open PGlite's files (another build of the server), so the rows are
 * copied: the old files are moved aside into <folder>/pglite-backup/, PGlite opens them
 * there and is brought up to this version's migrations, a new embedded PostgreSQL is made
 * in the folder and migrated the same way, and every table of the schema is copied over in
 * one transaction, sequences included. Row counts are compared before it commits. The
 * backup stays until you delete it; running the script again on a half-done folder
 * starts the copy again from the backup.
 *
 * The folder is DATA_DIR (./.data by default) unless one is given. No server may be
 * running on it.
 */
import { access, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import pg from 'pg';
import { loadConfig, readEnvironment } from '../src/config/index.js';
import { createDatabase } from '../src/db/client.js';
import { clusterOf } from '../src/db/embedded/cluster.js';
import { exitExplained } from '../src/db/failures.js';
import { migrationsFolder } from '../src/paths.js';

const BACKUP = 'pglite-backup';
/** Written into the backup once its rows are in: the import is done. */
const IMPORTED = 'IMPORTED';
/** Rows per INSERT: a JSON array of this many rows is one parameter. */
const CHUNK = 2000;

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

function fail(message: string): never {
  console.error(`npm run db:import-pglite: ${message}`);
  process.exit(1);
}

const env = readEnvironment();
const config = loadConfig({ ...env, DATABASE_URL: '' }, 'script');
const dir = resolve(process.argv[2] ?? config.dataDir);
const backup = join(dir, BACKUP);

if (await exists(join(clusterOf(dir), 'PG_VERSION'))) {
  if (!(await exists(backup)) || (await exists(join(backup, IMPORTED)))) {
    fail(`${dir} already holds an embedded PostgreSQL: nothing to import.`);
  }
  // An earlier run stopped half-way: its new cluster is incomplete. Start it again.
  console.log(`An earlier import into ${dir} did not finish: starting it again from ${backup}.`);
  await rm(clusterOf(dir), { recursive: true, force: true });
} else if (!(await exists(join(dir, 'PG_VERSION'))) && !(await exists(backup))) {
  fail(`${dir} holds no PGlite database (no PG_VERSION file in it).`);
}

// PGlite's files are everything at the top but what the new layout uses.
if (await exists(join(dir, 'PG_VERSION'))) {
  await mkdir(backup, { recursive: true });
  for (const name of await readdir(dir)) {
    if (name === BACKUP || name.startsWith('.s.PGSQL')) continue;
    await rename(join(dir, name), join(backup, name));
  }
  // The earlier server's socket files: it is not running (its folder lock would show).
  for (const name of await readdir(dir)) {
    if (name.startsWith('.s.PGSQL')) await rm(join(dir, name), { force: true });
  }
  console.log(`Moved the PGlite files into ${backup}.`);
}

const started = Date.now();
const source = await PGlite.create({ dataDir: backup });
await migrate(drizzle({ client: source }), { migrationsFolder });

const target = await createDatabase(
  { ...config, dataDir: dir, db: { ...config.db, statementTimeoutMs: 60 * 60_000 } },
  { embedded: { label: 'npm run db:import-pglite', exclusive: true } },
).catch(exitExplained('npm run db:import-pglite'));
await target.migrate();
// A connection of its own for the copy's one transaction, on the server this process runs.
const client = new pg.Client({ host: dir, port: 5432, user: 'postgres', database: 'postgres' });
client.on('error', () => undefined);
await client.connect();

interface Table {
  name: string;
  columns: string[];
}

try {
  const tables = (
    await source.query<{ name: string; columns: string[] }>(`
      select c.relname as name,
             array_agg(quote_ident(a.attname) order by a.attnum) as columns
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
       where n.nspname = 'public' and c.relkind in ('r', 'p') and a.attgenerated = ''
       group by c.relname
       order by c.relname`)
  ).rows as Table[];

  await client.query('begin');
  // Foreign keys and triggers are not checked while the rows arrive in any order; they
  // were checked when PGlite stored them.
  await client.query('set local session_replication_role = replica');
  let total = 0;
  for (const table of tables) {
    const ident = `public.${quoteIdent(table.name)}`;
    const columns = table.columns.join(', ');
    let copied = 0;
    for (let offset = 0; ; offset += CHUNK) {
      const { rows } = await source.query<{ r: string }>(
        `select coalesce(json_agg(t), '[]')::text as r
           from (select ${columns} from ${ident} order by ctid offset ${offset} limit ${CHUNK}) t`,
      );
      const chunk = rows[0]?.r ?? '[]';
      if (chunk === '[]') break;
      const result = await client.query(
        `insert into ${ident} (${columns}) overriding system value
         select ${columns} from json_populate_recordset(null::${ident}, $1::json)`,
        [chunk],
      );
      copied += result.rowCount ?? 0;
    }
    const [{ n }] = (await client.query<{ n: string }>(`select count(*) as n from ${ident}`))
      .rows as [{ n: string }];
    if (Number(n) !== copied) throw new Error(`${table.name}: ${copied} rows copied, ${n} found`);
    console.log(`${table.name}: ${copied} rows`);
    total += copied;
  }
  const sequences = (
    await source.query<{ name: string; value: string | null }>(
      `select quote_ident(schemaname) || '.' || quote_ident(sequencename) as name, last_value::text as value
         from pg_sequences where schemaname = 'public'`,
    )
  ).rows;
  for (const sequence of sequences) {
    if (sequence.value !== null) {
      await client.query('select setval($1::regclass, $2::bigint)', [
        sequence.name,
        sequence.value,
      ]);
    }
  }
  await client.query('commit');
  await writeFile(join(backup, IMPORTED), `${new Date().toISOString()}\n`);
  console.log(
    `Imported ${total} rows from ${tables.length} tables into the embedded PostgreSQL in ${dir} (${((Date.now() - started) / 1000).toFixed(1)} s).\n` +
      `The PGlite files stay in ${backup}: delete that folder once you no longer need it.`,
  );
} catch (error) {
  await client.query('rollback').catch(() => undefined);
  console.error(
    `npm run db:import-pglite: the copy failed and was rolled back (${error instanceof Error ? error.message : String(error)}). ` +
      `The PGlite files are untouched in ${backup}; run the command again to retry.`,
  );
  process.exitCode = 1;
} finally {
  await client.end();
  await target.close();
  await source.close();
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
