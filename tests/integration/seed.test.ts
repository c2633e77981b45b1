import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEMO_PASSWORD,
  demoPosts,
  seedBulk,
  seedDemoAccounts,
  seedDemoPosts,
  type BulkProgress,
} from '../../scripts/seed-data.js';
import { createPasswordHasher } from '../../src/lib/passwords.js';
import { baseSlug } from '../../src/lib/slug.js';
import { projectRoot } from '../../src/paths.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const SLUG_PATTERN = /^[a-z0-9]+(-[a-z0-9]+)*$/;

let t: TestDatabase;
const passwords = createPasswordHasher({ cost: 4, threads: 1 });

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await passwords.close();
  await t?.drop();
});

describe('the demo seed', () => {
  it('makes the demo posts once, however often it runs', async () => {
    await seedDemoAccounts(t.database.db, passwords);
    const first = await seedDemoPosts(t.database.db);
    expect(first.map((post) => post.action)).toEqual(demoPosts.map(() => 'created'));
    expect(first.map((post) => post.slug)).toContain('ola-mundo-acao');

    expect(await seedDemoAccounts(t.database.db, passwords)).toContain(
      'exists  admin@example.com (admin)',
    );
    const second = await seedDemoPosts(t.database.db);
    expect(second.map((post) => post.action)).toEqual(demoPosts.map(() => 'exists'));

    const slugs = demoPosts.map((post) => baseSlug(post.title));
    const [row] = await t.sql(sql`
      select count(*)::int as posts,
             count(*) filter (where published_at is null)::int as drafts,
             count(distinct published_at)::int as publication_times
      from posts where slug in ${slugs}`);
    expect(row).toEqual({ posts: demoPosts.length, drafts: 2, publication_times: 6 });
  });
});

describe('the bulk seed', () => {
  /** The rows of one run, found by the tag in its usernames and slugs. */
  async function runStats(tag: string) {
    const [row] = await t.sql(sql`
      with run_users as (select * from users where username like ${`%.${tag}`}),
           run_posts as (select * from posts where slug like ${`%-${tag}-%`})
      select (select count(*) from run_users)::int as users,
             (select count(distinct password_hash) from run_users)::int as hashes,
             (select min(password_hash) from run_users) as hash,
             (select count(*) from run_users
               where not email_verified or role <> 'user' or not is_active)::int as odd_users,
             (select count(*) from run_posts)::int as posts,
             (select count(*) from run_posts where published_at is not null)::int as published,
             (select count(*) from run_posts p
               where not exists (select 1 from run_users u where u.id = p.author_id))::int
               as foreign_authors,
             (select count(*) from run_posts
               where published_at < created_at or updated_at < created_at)::int as out_of_order,
             (select count(*) from (select published_at from run_posts
                                    where published_at is not null
                                    group by published_at having count(*) > 1) tied)::int
               as tied_times,
             (select count(distinct author_id) from run_posts)::int as authors,
             (select max(n) from (select count(*) as n from run_posts group by author_id) a)::int
               as most_by_one_author,
             (select count(*) from run_posts
               where search @@ to_tsquery('simple', 'database'))::int as with_database`);
    return row as Record<string, number> & { hash: string };
  }

  it('loads users and posts with the shape the API expects, twice', async () => {
    const progress: BulkProgress[] = [];
    const passwordHash = await passwords.hash(DEMO_PASSWORD);
    const options = {
      users: 50,
      posts: 1000,
      passwordHash,
      chunkSize: 400,
      onProgress: (step: BulkProgress) => progress.push(step),
    };
    const first = await seedBulk(t.database.db, options);
    expect(first).toMatchObject({ users: 50, posts: 1000 });
    expect(progress).toEqual([
      { table: 'users', done: 50, total: 50 },
      { table: 'posts', done: 400, total: 1000 },
      { table: 'posts', done: 800, total: 1000 },
      { table: 'posts', done: 1000, total: 1000 },
    ]);

    const stats = await runStats(first.tag);
    expect(stats).toMatchObject({
      users: 50,
      hashes: 1,
      odd_users: 0,
      posts: 1000,
      foreign_authors: 0,
      out_of_order: 0,
    });
    // Any bulk user can log in with the demo password.
    expect(await bcrypt.compare(DEMO_PASSWORD, stats.hash)).toBe(true);
    expect(stats.published).toBeGreaterThanOrEqual(850);
    expect(stats.published).toBeLessThanOrEqual(950);
    // Keyset pagination meets ties: many publication times are shared by several posts.
    expect(stats.tied_times).toBeGreaterThan(50);
    // Authors are uneven: one writes far more than the 20 posts of an even share.
    expect(stats.most_by_one_author).toBeGreaterThan(100);
    expect(stats.authors).toBeGreaterThan(10);
    // A common word is in many posts.
    expect(stats.with_database).toBeGreaterThan(300);

    // A second run adds as much again, under names and slugs of its own.
    const second = await seedBulk(t.database.db, { users: 50, posts: 1000, passwordHash });
    expect(second.tag).not.toBe(first.tag);
    expect(await runStats(second.tag)).toMatchObject({ users: 50, posts: 1000 });

    const [totals] = await t.sql(sql`
      select count(*)::int as posts, count(distinct slug)::int as slugs,
             count(*) filter (where slug !~ '^[a-z0-9]+(-[a-z0-9]+)*$' or length(slug) > 255)::int
               as bad_slugs,
             (select count(*) from users)::int as users
      from posts`);
    const demo = demoPosts.length;
    expect(totals).toEqual({ posts: 2000 + demo, slugs: 2000 + demo, bad_slugs: 0, users: 106 });
    const [sample] = await t.sql(sql`select slug from posts where slug like ${`%-${first.tag}-%`}`);
    expect(sample?.slug).toMatch(SLUG_PATTERN);
  });

  it('is the command npm run db:seed -- --users N --posts N', async () => {
    // On the test's PostgreSQL database when there is one, else in an embedded folder.
    const folder = t.url ? undefined : await mkdtemp(join(tmpdir(), 'seed-test-'));
    try {
      const run = await seedCommand(['--users', '5', '--posts', '100'], {
        DATABASE_URL: t.url ?? '',
        ...(folder ? { DATA_DIR: folder } : {}),
      });
      expect(run.code, run.output).toBe(0);
      // Not a terminal: a line per chunk, then the totals.
      expect(run.output).toMatch(/^users 5\/5 \(\d+\.\d s\)$/m);
      expect(run.output).toMatch(/^posts 100\/100 \(\d+\.\d s\)$/m);
      expect(run.output).toMatch(
        /^added 5 users and 100 posts in \d+\.\d s \(run tag [a-z0-9]{6}\)$/m,
      );
    } finally {
      if (folder) await rm(folder, { recursive: true, force: true });
    }
  }, 60_000);

  it('refuses a bad number with exit code 2', async () => {
    const run = await seedCommand(['--posts', '12x'], {});
    expect(run.code).toBe(2);
    expect(run.output).toContain('--posts must be a whole number, not "12x"');
  });
});

function seedCommand(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/seed.ts', ...args], {
    cwd: projectRoot,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      NODE_ENV: 'test',
      JWT_SECRET: 'seed-test-secret-seed-test-secret-seed',
      DATABASE_URL: '',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output })));
}
