/**
 * npm run db:seed: loads demo users and a demo admin, admin@example.com (all with the
 * password "correct horse battery staple"), and a handful of demo posts into DATABASE_URL,
 * or into the embedded database in DATA_DIR. Users and posts that exist already are left as
 * they are (an existing admin@example.com is made an admin, its password unchanged, if its
 * address is verified), so it can run again safely.
 *
 *   npm run db:seed -- --users 10000 --posts 200000   # also a bulk data set
 *   npm run db:seed -- --help
 *
 * What it writes is in seed-data.ts.
 */
import { performance } from 'node:perf_hooks';
import { sql } from 'drizzle-orm';
import { loadConfig, readEnvironment } from '../src/config/index.js';
import { createDatabase, type Db } from '../src/db/client.js';
import { exitExplained } from '../src/db/failures.js';
import { createPasswordHasher } from '../src/lib/passwords.js';
import {
  DEMO_PASSWORD,
  parseSeedArguments,
  seedBulk,
  seedDemoAccounts,
  seedDemoPosts,
  seedUsage,
  type BulkProgress,
} from './seed-data.js';

const parsed = parseSeedArguments(process.argv.slice(2));
if (parsed.kind === 'help') {
  console.log(seedUsage);
  process.exit(0);
}
if (parsed.kind === 'error') {
  console.error(`npm run db:seed: ${parsed.message}\nSee npm run db:seed -- --help`);
  process.exit(2);
}

const failed = exitExplained('npm run db:seed');
const config = await Promise.resolve()
  .then(() => loadConfig(readEnvironment(), 'script'))
  .catch(failed);
const database = await createDatabase(
  // One INSERT … SELECT of a bulk chunk can outlast the API's statement timeout, on the
  // embedded database above all; the seed has nobody waiting on it.
  { ...config, db: { ...config.db, statementTimeoutMs: 60 * 60_000 } },
  { embedded: { label: 'npm run db:seed' } },
).catch(failed);
const passwords = createPasswordHasher({ cost: config.bcryptCost, threads: 1 });
try {
  await database.migrate();
  for (const line of await seedDemoAccounts(database.db, passwords)) console.log(line);
  for (const post of await seedDemoPosts(database.db)) {
    if (post.action === 'created') console.log(`created post ${post.slug}`);
    else if (post.action === 'exists') console.log(`exists  post ${post.slug}`);
    else console.log(`skipped post ${post.slug} (its demo author does not exist)`);
  }

  if (parsed.users > 0 || parsed.posts > 0) {
    console.log(
      `\nBulk: ${parsed.users.toLocaleString('en')} users and ${parsed.posts.toLocaleString('en')} posts into ${database.location}`,
    );
    const started = performance.now();
    // One hash for every bulk user: at the configured cost, hashing each would take hours.
    const passwordHash = await passwords.hash(DEMO_PASSWORD);
    const result = await seedBulk(database.db, {
      users: parsed.users,
      posts: parsed.posts,
      passwordHash,
      onProgress: progressPrinter(started),
    });
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `added ${result.users.toLocaleString('en')} users and ${result.posts.toLocaleString('en')} posts in ${seconds.toFixed(1)} s (run tag ${result.tag})`,
    );
    console.log(await describeTotals(database.db));
  }
  console.log(`\nLog in with any of them and the password "${DEMO_PASSWORD}".`);
} finally {
  await passwords.close();
  await database.close();
}

/** A progress bar on a terminal; a line per chunk otherwise (logs, CI). */
function progressPrinter(started: number): (progress: BulkProgress) => void {
  const out = process.stdout;
  const width = 30;
  return ({ table, done, total }) => {
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (!out.isTTY) {
      console.log(`${table} ${done}/${total} (${seconds} s)`);
      return;
    }
    const filled = Math.round((width * done) / total);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const percent = `${Math.floor((100 * done) / total)}%`.padStart(4);
    out.write(`\r${table.padEnd(5)} ${bar} ${percent} ${done}/${total} (${seconds} s)`);
    if (done === total) out.write('\n');
  };
}

async function describeTotals(db: Db): Promise<string> {
  const result: unknown = await db.execute(sql`
    select (select count(*) from users)::int as users,
           (select count(*) from posts)::int as posts,
           (select count(*) from posts where published_at is not null)::int as published`);
  const [row] = (result as { rows: { users: number; posts: number; published: number }[] }).rows;
  if (!row) return '';
  const percent = row.posts > 0 ? ((100 * row.published) / row.posts).toFixed(1) : '0';
  return `the database now has ${row.users.toLocaleString('en')} users and ${row.posts.toLocaleString('en')} posts, ${percent}% of them published`;
}
