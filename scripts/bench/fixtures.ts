/**
 * The bench's database: created if missing, migrated, seeded once with the bulk data set
 * (reused while its recorded seed matches), and the inputs of the benchmarked requests read
 * from it (post ids and slugs, user ids, a deep cursor, sessions for getMe and refreshToken).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { createSigner } from 'fast-jwt';
import pg from 'pg';
import { fileURLToPath } from 'node:url';

/** What every request of the bench sends as its User-Agent: its sessions are found by it. */
export const BENCH_AGENT = 'npm-run-bench';
export const JWT_ISSUER = 'contract-first-api';
const DEMO_PASSWORD = 'correct horse battery staple';

export function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, ...env } });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited ${code}`)),
    );
  });
}

/** Creates the database of `url` when it does not exist (through the server's `postgres`). */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`Not a simple database name: ${name}`);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.href });
  await client.connect();
  try {
    const { rows } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (rows.length === 0) {
      console.log(`creating database ${name}`);
      await client.query(`create database "${name}"`);
    }
  } finally {
    await client.end();
  }
}

/** The seed recorded in the database's comment, so that a rerun knows it can reuse it. */
const seedLabel = (users: number, posts: number) =>
  `npm run bench seed: ${users} users, ${posts} posts`;

export async function seedIfNeeded(
  url: string,
  size: { users: number; posts: number },
  bcryptCost: number,
): Promise<void> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    const { rows } = await db.query<{ comment: string | null }>(
      'select shobj_description(oid, $1) as comment from pg_database where datname = current_database()',
      ['pg_database'],
    );
    const wanted = seedLabel(size.users, size.posts);
    if (rows[0]?.comment !== wanted) {
      const { rows: counts } = await db.query<{ posts: number }>(
        'select count(*)::int as posts from posts',
      );
      if ((counts[0]?.posts ?? 0) > 0) {
        throw new Error(
          `${url} holds other data (${counts[0]!.posts} posts, not the bench's seed): drop it, or set BENCH_DATABASE_URL to another database`,
        );
      }
      console.log(`seeding ${size.users} users and ${size.posts} posts (once; reruns reuse them)`);
      await run(
        'npx',
        ['tsx', 'scripts/seed.ts', '--users', String(size.users), '--posts', String(size.posts)],
        {
          DATABASE_URL: url,
          BCRYPT_COST: String(bcryptCost),
          NODE_ENV: 'development',
          // The configuration is checked whole: with DATABASE_URL it requires JWT_SECRET,
          // which the seed itself never uses.
          JWT_SECRET: randomBytes(32).toString('hex'),
        },
      );
      await db.query(`comment on database "${new URL(url).pathname.slice(1)}" is '${wanted}'`);
    }
    // Logins compare at the servers' cost: hashes of another cost would be rehashed by the
    // first login of each account (work neither server should be measured doing).
    const { rows: hashes } = await db.query<{ hash: string }>(
      `select password_hash as hash from users where email like '%@example.org' limit 1`,
    );
    if (hashes[0] && bcrypt.getRounds(hashes[0].hash) !== bcryptCost) {
      console.log(`rehashing the bulk users' password at cost ${bcryptCost}`);
      const hash = await bcrypt.hash(DEMO_PASSWORD, bcryptCost);
      await db.query(`update users set password_hash = $1 where email like '%@example.org'`, [
        hash,
      ]);
    }
    // What earlier runs left: their sessions and counted logins.
    await db.query('delete from sessions where user_agent = $1', [BENCH_AGENT]);
    await db.query('delete from login_failures');
    await db.query('vacuum analyze sessions, refresh_tokens');
  } finally {
    await db.end();
  }
}

export interface Inputs {
  postIds: string[];
  slugs: string[];
  userIds: string[];
  emails: string[];
  deepCursor: string;
  deepOffset: number;
  publishedCount: number;
}

/** Random published posts and bulk users, and the cursor of a page deep in the list. */
export async function readInputs(url: string, deepOffset: number): Promise<Inputs> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    const posts = await db.query<{ id: string; slug: string }>(
      `select id, slug from posts where published_at is not null order by random() limit 500`,
    );
    const users = await db.query<{ id: string; email: string }>(
      `select id, email from users where email like '%@example.org' and is_active
        order by random() limit 2000`,
    );
    const { rows: counted } = await db.query<{ n: number }>(
      'select count(*)::int as n from posts where published_at is not null',
    );
    const publishedCount = counted[0]!.n;
    const offset = Math.min(deepOffset, publishedCount - 21);
    // The API's cursor (lib/cursor.ts): base64url of "<publishedAt ISO>|<id>".
    const { rows: deep } = await db.query<{ at: string; id: string }>(
      `select to_char(published_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at, id
         from posts where published_at is not null
        order by published_at desc nulls last, id desc nulls last offset $1 limit 1`,
      [offset],
    );
    return {
      postIds: posts.rows.map((r) => r.id),
      slugs: posts.rows.map((r) => r.slug),
      userIds: users.rows.map((r) => r.id),
      emails: users.rows.map((r) => r.email),
      deepCursor: Buffer.from(`${deep[0]!.at}|${deep[0]!.id}`, 'utf8').toString('base64url'),
      deepOffset: offset,
      publishedCount,
    };
  } finally {
    await db.end();
  }
}

/**
 * Live sessions of bulk users, made directly in the database as a login makes them, each with
 * its first refresh token (only its SHA-256 stored): a pool of single-use refresh tokens.
 */
export async function makeSessions(
  url: string,
  userIds: string[],
  count: number,
): Promise<{ sessionIds: string[]; userIds: string[]; refreshTokens: string[] }> {
  const tokens = Array.from({ length: count }, () => randomBytes(32).toString('base64url'));
  const hashes = tokens.map((t) => createHash('sha256').update(t, 'utf8').digest('hex'));
  const owners = tokens.map((_, i) => userIds[i % userIds.length]!);
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    const { rows } = await db.query<{ id: string; user_id: string }>(
      `with made as (
         select u, h, ord from unnest($1::uuid[], $2::text[]) with ordinality as x(u, h, ord)
       ), s as (
         insert into sessions (user_id, user_agent, ip_address, expires_at)
         select u, $3, '127.0.0.1', now() + interval '30 days' from made order by ord
         returning id, user_id
       ), numbered as (
         select id, user_id, row_number() over () as ord from s
       ), t as (
         insert into refresh_tokens (session_id, token_hash)
         select numbered.id, made.h from numbered join made using (ord)
       )
       select id, user_id from numbered order by ord`,
      [owners, hashes, BENCH_AGENT],
    );
    return {
      sessionIds: rows.map((r) => r.id),
      userIds: rows.map((r) => r.user_id),
      refreshTokens: tokens,
    };
  } finally {
    await db.end();
  }
}

/** Access tokens as the API signs them (HS256, iss, aud, sub, role, sid), valid for hours. */
export function accessTokens(
  secret: string,
  sessions: { sessionIds: string[]; userIds: string[] },
): string[] {
  const sign = createSigner({
    key: secret,
    algorithm: 'HS256',
    iss: JWT_ISSUER,
    aud: JWT_ISSUER,
    expiresIn: 6 * 3600_000,
  });
  return sessions.sessionIds.map((sid, i) => sign({ sub: sessions.userIds[i], role: 'user', sid }));
}

export async function cleanUp(url: string): Promise<void> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    await db.query('delete from sessions where user_agent = $1', [BENCH_AGENT]);
    await db.query('delete from login_failures');
  } finally {
    await db.end();
  }
}

/**
 * A database of a bench run's own on the PostgreSQL server at `serverUrl` (`<prefix>_<hex>`):
 * created, migrated (dist/db/migrate.js), seeded by scripts/seed.ts with `size` (bcrypt cost
 * 4), vacuumed and analyzed. Dropped again if that fails; else `drop` drops it.
 */
export async function makeRunDatabase(
  serverUrl: string,
  prefix: string,
  size: { users: number; posts: number },
  secret: string,
  say: (message: string) => void,
): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const target = new URL(serverUrl);
  target.pathname = `/${name}`;
  const url = target.href;
  const query = async (on: string, text: string) => {
    const client = new pg.Client({ connectionString: on });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  };
  const drop = () =>
    query(serverUrl, `drop database if exists "${name}" with (force)`).catch(() => undefined);
  await query(serverUrl, `create database "${name}"`);
  try {
    say(`database ${name}: migrating, seeding ${size.users} users and ${size.posts} posts`);
    const migrate = fileURLToPath(new URL('../../dist/db/migrate.js', import.meta.url));
    await run(process.execPath, [migrate], { DATABASE_URL: url, JWT_SECRET: secret });
    await run(
      'npx',
      ['tsx', 'scripts/seed.ts', '--users', String(size.users), '--posts', String(size.posts)],
      { DATABASE_URL: url, BCRYPT_COST: '4', NODE_ENV: 'development', JWT_SECRET: secret },
    );
    await query(url, 'vacuum analyze');
  } catch (error) {
    await drop();
    throw error;
  }
  return { name, url, drop };
}
