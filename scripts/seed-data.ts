/**
 * What `npm run db:seed` writes (scripts/seed.ts is the command line around it): the demo
 * accounts and posts, and the optional bulk data set for trying pagination, search and
 * query plans at a realistic size.
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { inArray, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../src/db/client.js';
import { posts } from '../src/db/schema/posts.js';
import { users as usersTable } from '../src/db/schema/users.js';
import type { PasswordHasher } from '../src/lib/passwords.js';
import { noChanges } from '../src/lib/changes.js';
import { baseSlug } from '../src/lib/slug.js';
import { ensureAdminAccount } from '../src/modules/users/admin-account.js';
import { createUsersRepository } from '../src/modules/users/repository.js';
import { createUsersService } from '../src/modules/users/service.js';

/** The password of every seeded account, demo and bulk alike. */
export const DEMO_PASSWORD = 'correct horse battery staple';

export const demoAdmin = { email: 'admin@example.com', username: 'admin' };

export const demoUsers = [
  { email: 'ada@example.com', username: 'ada', firstName: 'Ada', lastName: 'Lovelace' },
  { email: 'grace@example.com', username: 'grace', firstName: 'Grace', lastName: 'Hopper' },
  { email: 'alan@example.com', username: 'alan', firstName: 'Alan', lastName: 'Turing' },
  {
    email: 'katherine@example.com',
    username: 'katherine',
    firstName: 'Katherine',
    lastName: 'Johnson',
  },
  { email: 'edsger@example.com', username: 'edsger', firstName: 'Edsger', lastName: 'Dijkstra' },
];

/**
 * The demo users and admin, through the users service as sign-ups would be. Accounts that
 * exist already are left as they are (an existing admin@example.com is made an admin, its
 * password unchanged, if its address is verified; else the seed stops, as the server
 * would with that ADMIN_EMAIL). Says what it did, a line per account.
 */
export async function seedDemoAccounts(db: Db, passwords: PasswordHasher): Promise<string[]> {
  const repository = createUsersRepository(db);
  const users = createUsersService({
    users: repository,
    passwords,
    // Demo accounts at example.com: no verification email is queued for them.
    mail: { sendVerification: async () => false, nudge: () => undefined },
    // The seed disables no account, so no session ever has to end.
    sessions: { revokeAll: async () => 0 },
    // Nor does it delete one, with its posts.
    posts: { deleteAllOf: async () => 0 },
    // A seed runs before the API serves these accounts; a running API's cache, if any,
    // drops listings after CACHE_TTL.
    changes: noChanges,
  });
  const lines: string[] = [];
  for (const user of demoUsers) {
    const created = await users.create({ ...user, password: DEMO_PASSWORD });
    if (created.ok) lines.push(`created ${user.email}`);
    else if (created.error.code === 'CONFLICT') lines.push(`exists  ${user.email}`);
    else throw created.error;
  }
  const admin = await ensureAdminAccount(
    { users: repository, passwords },
    { ...demoAdmin, password: DEMO_PASSWORD },
  );
  const said = { created: 'created', promoted: 'promoted', unchanged: 'exists ' };
  lines.push(`${said[admin.action]} ${admin.user.email} (admin)`);
  return lines;
}

interface DemoPost {
  author: string;
  title: string;
  content: string;
  /** Days ago it was written; published that many days ago minus `publishedAfter`. */
  daysAgo: number;
  /** Days between writing and publishing; unset: a draft. */
  publishedAfter?: number;
}

export const demoPosts: DemoPost[] = [
  {
    author: 'ada',
    title: 'Notes on the Analytical Engine',
    content: `The Analytical Engine weaves algebraic patterns just as the Jacquard loom weaves flowers and leaves.

## What it can do

- It operates on symbols, not only on numbers.
- It can repeat a series of operations any number of times.
- It could compose elaborate pieces of music, were the relations of pitched sounds expressed in its notation.

The Engine has no pretensions to originate anything. It can do whatever we know how to order it to perform.`,
    daysAgo: 420,
    publishedAfter: 2,
  },
  {
    author: 'grace',
    title: 'Olá, Mundo! Ação',
    content: `Um primeiro post com acentos no título: o *slug* fica \`ola-mundo-acao\`.

Escrever software é traduzir intenções em instruções. Quando a tradução falha, o erro quase sempre está na intenção.

Até breve!`,
    daysAgo: 300,
    publishedAfter: 0,
  },
  {
    author: 'grace',
    title: 'The first actual case of a bug being found',
    content: `On 9 September 1947 the Mark II stopped. In relay 70, panel F, we found a moth.

We taped it into the logbook with the note *first actual case of bug being found*. The word was older than the moth, but the moth made it stick.

## The lesson

Look at the machine, not only at the program. Sometimes the fault is exactly where nobody thought to look.`,
    daysAgo: 180,
    publishedAfter: 1,
  },
  {
    author: 'alan',
    title: 'Can machines think? A short reading list',
    content: `I propose to consider the question, "Can machines think?" Rather than define *machine* and *think*, replace the question with a game.

1. *Computing Machinery and Intelligence* (1950): the imitation game.
2. *On Computable Numbers* (1936): what a machine can compute at all.
3. Lady Lovelace's objection, and why it is weaker than it looks.

We can only see a short distance ahead, but we can see plenty there that needs to be done.`,
    daysAgo: 120,
    publishedAfter: 3,
  },
  {
    author: 'katherine',
    title: 'Checking orbital mechanics by hand',
    content: `Before a flight, the astronaut asked for the girl to check the numbers. So I did, by hand, with a desk calculator and a lot of paper.

## Why check twice

A computer repeats a mistake perfectly. A person checking the same equations a different way will not make the same mistake.

Like what you do, and then you will do your best.`,
    daysAgo: 45,
    publishedAfter: 0,
  },
  {
    author: 'edsger',
    title: 'Go To Statement Considered Harmful, revisited',
    content: `The quality of programmers is a decreasing function of the density of go to statements in the programs they produce.

Our intellectual powers are rather geared to master static relations; our powers to visualise processes evolving in time are relatively poorly developed.

## So what now?

Structured control flow won. The same argument now applies to shared mutable state: keep the gap between the program text and the process it spawns small.`,
    daysAgo: 12,
    publishedAfter: 0,
  },
  {
    author: 'ada',
    title: 'Note G, step by step',
    content: `A draft: the table for computing the Bernoulli numbers, one operation per line, with the variables each one reads and writes.

- Operation 1: multiply V2 by V3.
- Operation 2: subtract 1 from the result.
- …`,
    daysAgo: 3,
  },
  {
    author: 'edsger',
    title: 'On the cruelty of really teaching computing science',
    content: `Unfinished. Radical novelty needs to be approached with a blank mind, and analogies do more harm than good.

Program testing can be used to show the presence of bugs, but never to show their absence.`,
    daysAgo: 1,
  },
];

/** Per demo post: whether this run created it or found its slug taken already. */
export interface DemoPostResult {
  slug: string;
  action: 'created' | 'exists' | 'no-author';
}

/**
 * The demo posts, each under the slug its title gives. A slug that exists already, from an
 * earlier run or from anybody, is left as it is (ON CONFLICT DO NOTHING), so this can run
 * again and again.
 */
export async function seedDemoPosts(db: Db): Promise<DemoPostResult[]> {
  const authors = await db
    .select({ id: usersTable.id, username: usersTable.username })
    .from(usersTable)
    .where(
      inArray(
        sql`lower(${usersTable.username})`,
        demoPosts.map((post) => post.author),
      ),
    );
  const idOf = new Map(authors.map((author) => [author.username.toLowerCase(), author.id]));
  const results: DemoPostResult[] = [];
  for (const post of demoPosts) {
    const slug = baseSlug(post.title);
    const authorId = idOf.get(post.author);
    if (!authorId) {
      results.push({ slug, action: 'no-author' });
      continue;
    }
    const createdAt = sql`date_trunc('minute', now()) - ${post.daysAgo} * interval '1 day'`;
    const publishedAt =
      post.publishedAfter === undefined
        ? null
        : sql`date_trunc('minute', now()) - ${post.daysAgo - post.publishedAfter} * interval '1 day'`;
    const inserted = await db
      .insert(posts)
      .values({
        authorId,
        title: post.title,
        content: post.content,
        slug,
        publishedAt,
        createdAt,
        updatedAt: publishedAt ?? createdAt,
        viewCount: post.publishedAfter === undefined ? 0 : 10 * (post.daysAgo + 7),
      })
      .onConflictDoNothing({ target: posts.slug })
      .returning({ id: posts.id });
    results.push({ slug, action: inserted.length > 0 ? 'created' : 'exists' });
  }
  return results;
}

// ---------------------------------------------------------------------------------------
// The bulk data set.

/** What `npm run db:seed` was asked to do. */
export type SeedArguments =
  | { kind: 'help' }
  | { kind: 'seed'; users: number; posts: number }
  | { kind: 'error'; message: string };

/** Sanity limit for both numbers: a typo of a few digits too many should not run for hours. */
export const BULK_MAX = 10_000_000;

/** Users made for `--posts N` without `--users`: one per this many posts. */
export const POSTS_PER_USER = 20;

export const seedUsage = `Usage: npm run db:seed [-- [--users N] [--posts N]]

Seeds the database DATABASE_URL names, or the embedded one in DATA_DIR. Without options:
the demo accounts (five users and admin@example.com) and a handful of demo posts; safe to
run again. With options, also a bulk data set, made by the database (set-based SQL):

  --users N   N more users, all with the password "${DEMO_PASSWORD}"
  --posts N   N more posts (about 90% published) by those users; without --users,
              max(1, N/${POSTS_PER_USER}) users are made for them
  --help      this text

Every bulk run adds new users and posts beside those of earlier runs. N is a whole
number from 0 to ${BULK_MAX.toLocaleString('en')}. Example: npm run db:seed -- --users 10000 --posts 200000`;

function countOf(name: string, value: string | undefined): number | string {
  if (value === undefined) return 0;
  if (!/^\d+(_\d+)*$/.test(value)) {
    return `--${name} must be a whole number, not "${value}"`;
  }
  const number = Number(value.replace(/_/g, ''));
  if (number > BULK_MAX) return `--${name} must be at most ${BULK_MAX.toLocaleString('en')}`;
  return number;
}

/** The command line of `npm run db:seed`, or why it is wrong. */
export function parseSeedArguments(args: string[]): SeedArguments {
  let values: {
    users?: string | undefined;
    posts?: string | undefined;
    help?: boolean | undefined;
  };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        users: { type: 'string' },
        posts: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    return { kind: 'error', message: (error as Error).message };
  }
  if (values.help) return { kind: 'help' };
  const users = countOf('users', values.users);
  if (typeof users === 'string') return { kind: 'error', message: users };
  const postCount = countOf('posts', values.posts);
  if (typeof postCount === 'string') return { kind: 'error', message: postCount };
  if (values.users === undefined && postCount > 0) {
    return {
      kind: 'seed',
      users: Math.max(1, Math.floor(postCount / POSTS_PER_USER)),
      posts: postCount,
    };
  }
  if (postCount > 0 && users === 0) {
    return { kind: 'error', message: '--posts needs at least one user: leave out --users 0' };
  }
  return { kind: 'seed', users, posts: postCount };
}

export interface BulkProgress {
  table: 'users' | 'posts';
  done: number;
  total: number;
}

export interface BulkOptions {
  users: number;
  posts: number;
  /** The bcrypt hash every bulk user gets: hashing is far too slow to do per user. */
  passwordHash: string;
  /** Rows per INSERT … SELECT; each statement reports progress when it is done. */
  chunkSize?: number;
  onProgress?: (progress: BulkProgress) => void;
  /** Lower-case letters and digits that make this run's usernames, emails and slugs unique. */
  tag?: string;
}

export interface BulkResult {
  tag: string;
  users: number;
  posts: number;
}

const TAG_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const TAG_LENGTH = 6;

/** Six random characters of [a-z0-9]. */
export function randomTag(): string {
  return Array.from({ length: TAG_LENGTH }, () => TAG_ALPHABET[randomInt(36)]).join('');
}

// Word lists. Constants of this file, written into the SQL as array literals.
// prettier-ignore
const firstNames = [
  'Ana', 'Ben', 'Carla', 'David', 'Elena', 'Farid', 'Greta', 'Hugo', 'Ines', 'Jonas', 'Kenji',
  'Lena', 'Marco', 'Nadia', 'Omar', 'Priya', 'Quentin', 'Rosa', 'Sam', 'Tomas', 'Uma', 'Victor',
  'Wen', 'Yara', 'Zoe', 'José', 'Zoë', 'Inês', 'Søren', 'Björn', 'Chloé', 'François', 'Aoife',
  'Mateus', 'Olga', 'Rafael', 'Sofia', 'Liam', 'Amara', 'Noah',
];
// prettier-ignore
const lastNames = [
  'Silva', 'Smith', 'Müller', 'García', 'Rossi', 'Kowalski', 'Nguyen', 'Khan', 'Okafor', 'Tanaka',
  'Novak', 'Dubois', 'Jensen', 'Costa', 'Petrov', 'Ahmed', 'Murphy', 'Larsen', 'Moreau', 'Yilmaz',
  'Santos', 'Fischer', 'Haddad', 'Ivanova', 'Kim', 'Lopez', 'Mendes', 'Park', 'Schmidt', 'Wright',
];
// The letters above that a username cannot have, and what they become.
const accented = 'éëêöüøçáíóúãõ';
const unaccented = 'eeeouocaiouao';

// None begins with a vowel sound: the sentences put 'a' before them.
// prettier-ignore
export const adjectives = [
  'quiet', 'practical', 'gentle', 'small', 'fast', 'slow', 'simple', 'curious', 'boring',
  'reliable', 'modern', 'hidden', 'forgotten', 'surprising', 'careful', 'lazy', 'stubborn',
  'messy', 'tiny', 'complete', 'patient', 'sturdy', 'friendly', 'strange', 'brave',
];
// prettier-ignore
export const nouns = [
  'database', 'query', 'index', 'server', 'team', 'deadline', 'garden', 'coffee', 'library',
  'river', 'kitchen', 'release', 'migration', 'bug', 'feature', 'cache', 'browser', 'compiler',
  'network', 'budget', 'meeting', 'weekend', 'recipe', 'journey', 'camera', 'bicycle',
  'notebook', 'window', 'morning', 'schema', 'backup', 'cluster', 'pipeline', 'test', 'review',
  'design', 'pattern', 'function', 'keyboard', 'project', 'habit', 'map', 'city', 'bakery',
  'train', 'deploy', 'log', 'queue', 'lesson', 'mistake',
];
// prettier-ignore
const topics = [
  'PostgreSQL', 'keyset pagination', 'full-text search', 'remote work', 'sourdough bread',
  'TypeScript', 'code review', 'on-call duty', 'technical debt', 'urban cycling',
  'home espresso', 'indexing', 'API design', 'pair programming', 'observability',
  'open source', 'hiking in the rain', 'learning Japanese', 'container gardening',
  'writing documentation', 'slow travel', 'zero-downtime deployment', 'film photography',
  'public transport', 'cooking for one',
];
// prettier-ignore
const verbsPast = [
  'rebuilt', 'migrated', 'tested', 'simplified', 'measured', 'rewrote', 'fixed', 'shipped',
  'replaced', 'doubled', 'halved', 'documented', 'broke', 'rescued', 'automated',
];
// prettier-ignore
const verbs = [
  'improves', 'breaks', 'changes', 'explains', 'hides', 'slows down', 'speeds up', 'replaces',
  'needs', 'deserves', 'outlives', 'shapes', 'reveals', 'protects', 'complicates',
];
// Adverbs for the start, the middle and the end of a sentence.
// prettier-ignore
const openers = [
  'Often', 'Sometimes', 'Eventually', 'Surprisingly', 'Clearly', 'In practice', 'Honestly',
  'Every time', 'Sooner or later', 'In the end',
];
// prettier-ignore
const adverbs = [
  'quietly', 'slowly', 'rarely', 'often', 'always', 'never', 'sometimes', 'clearly',
  'actually', 'still',
];
// prettier-ignore
const closers = [
  'quietly', 'slowly', 'quickly', 'eventually', 'every time', 'again', 'in the end',
  'for a while', 'by accident', 'on purpose',
];
// prettier-ignore
const places = [
  'Lisbon', 'a small bakery', 'the night shift', 'my first job', 'a broken laptop', 'Kyoto',
  'the mountains', 'a failed launch', 'the support queue', 'Berlin', 'a rainy week',
  'the old office',
];
const units = ['days', 'weeks', 'months', 'sprints', 'evenings', 'hours'];
// One post in a hundred ends with one of these: a search for one finds a few dozen in 200,000.
// prettier-ignore
export const rareWords = [
  'zeugma', 'quokka', 'susurrus', 'petrichor', 'sonder', 'apricity', 'brontide', 'crepuscular',
  'defenestration', 'ephemeron', 'fernweh', 'gossamer', 'halcyon', 'ineffable', 'jentacular',
  'kerfuffle', 'lagniappe', 'mellifluous', 'nefelibata', 'onomatopoeia', 'palimpsest',
  'quiddity', 'rhadamanthine', 'serendipity', 'tmesis', 'ultracrepidarian', 'vellichor',
  'wabisabi', 'xenial', 'yugen', 'zephyr', 'abecedarian', 'bumbershoot', 'cromulent',
  'dithyramb', 'eldritch', 'flibbertigibbet', 'gallimaufry', 'hobbledehoy', 'isthmus',
  'jabberwocky', 'kakistocracy', 'limerence', 'mumpsimus', 'nudiustertian', 'obelus',
  'pulchritude', 'quincunx', 'ratoon', 'snollygoster',
];

const literal = (word: string) => `'${word.replace(/'/g, "''")}'`;

/** A random element of `words`, picked by the database for every row. */
function pick(words: readonly string[], skew = 1): SQL {
  // random()^skew with skew > 1 favours the first words: a few common, the rest rarer.
  const draw = skew === 1 ? 'random()' : `power(random(), ${skew})`;
  return sql.raw(
    `(array[${words.map(literal).join(', ')}])[1 + floor(${draw} * ${words.length})::int]`,
  );
}

/** How many distinct sentences a posts statement makes and draws its contents from. */
const SENTENCES = 16384;

/** The time the bulk posts span, ending now; the bulk users joined in the year before. */
const span = sql.raw(`interval '730 days'`);

/**
 * Users and posts made by INSERT … SELECT over generate_series, a chunk per statement, in
 * one transaction (an interrupted run leaves nothing behind), then ANALYZE.
 *
 * Usernames and emails carry a random tag of this run (`ana.silva.42.k3x9q7`,
 * `ana.silva.42.k3x9q7@example.org`) rather than being the same every run with ON CONFLICT
 * DO NOTHING: each run then adds exactly the users it says, its posts go to its own users,
 * and no earlier run's rows can be mistaken for this one's. Demo usernames have no dots, so
 * they cannot collide either; a tag met twice (one chance in two billion) fails the run on
 * the unique index and writes nothing.
 */
export async function seedBulk(db: Db, options: BulkOptions): Promise<BulkResult> {
  const { users, posts: postCount, passwordHash } = options;
  const chunkSize = options.chunkSize ?? 20_000;
  const tag = options.tag ?? randomTag();
  if (!/^[a-z0-9]+$/.test(tag)) throw new Error(`A run tag is [a-z0-9]+, not "${tag}".`);
  if (postCount > 0 && users < 1) throw new Error('Posts need at least one bulk user.');
  const report = options.onProgress ?? (() => undefined);

  await db.transaction(async (tx) => {
    // The planner guesses 1000 rows per generate_series, so nested ones look huge and JIT
    // compiles every statement: 0.6 s each, most of a small chunk's time, for nothing.
    await tx.execute(sql`set local jit = off`);
    // The run's users by number 0 … users-1, so that posts can pick an author by number.
    await tx.execute(
      sql`create temporary table seed_authors (n integer primary key, id uuid not null) on commit drop`,
    );
    for (let from = 0; from < users; from += chunkSize) {
      const to = Math.min(users, from + chunkSize) - 1;
      await tx.execute(insertUsers(from, to, tag, passwordHash));
      report({ table: 'users', done: to + 1, total: users });
    }
    // Posts share about one timestamp in three with another post: keyset pagination on
    // (published_at, id) and (created_at, id) meets ties on every page.
    const slots = Math.max(1, Math.ceil(postCount / 3));
    for (let from = 0; from < postCount; from += chunkSize) {
      const to = Math.min(postCount, from + chunkSize) - 1;
      await tx.execute(insertPosts(from, to, tag, users, slots));
      report({ table: 'posts', done: to + 1, total: postCount });
    }
  });
  // Autovacuum would analyze the tables in a while; until then the planner would see them
  // as they were (empty, for a new database) and choose plans for that.
  if (users > 0 || postCount > 0) await db.execute(sql`analyze users, posts`);
  return { tag, users, posts: postCount };
}

function insertUsers(from: number, to: number, tag: string, passwordHash: string): SQL {
  const plain = (column: SQL) => sql`translate(lower(${column}), ${accented}, ${unaccented})`;
  return sql`
    with made as (
      select n, gen_random_uuid() as id, ${pick(firstNames)} as first_name,
             ${pick(lastNames)} as last_name,
             -- Before the first bulk post (two to three years ago), to the minute: ties.
             date_trunc('minute', now() - ${span} - random() * interval '365 days') as created_at
      from generate_series(${from}::int, ${to}::int) as n
    ), numbered as (
      insert into seed_authors (n, id) select n, id from made
    )
    insert into users (id, email, username, password_hash, first_name, last_name,
                       email_verified, role, created_at, updated_at)
    select id,
           ${plain(sql`first_name`)} || '.' || ${plain(sql`last_name`)} || '.' || n || '.' || ${tag}
             || '@example.org',
           ${plain(sql`first_name`)} || '.' || ${plain(sql`last_name`)} || '.' || n || '.' || ${tag},
           ${passwordHash}, first_name, last_name, true, 'user', created_at, created_at
    from made`;
}

/** One sentence of a post, in one of a few shapes. */
const sentence = sql`case floor(random() * 6)::int
  when 0 then 'The ' || ${pick(adjectives)} || ' ' || ${pick(nouns, 2)} || ' ' || ${pick(verbs)}
    || ' the ' || ${pick(nouns, 2)} || ' ' || ${pick(closers)} || '.'
  when 1 then 'We ' || ${pick(verbsPast)} || ' our ' || ${pick(nouns, 2)} || ' and the '
    || ${pick(nouns, 2)} || ' ' || ${pick(verbs)} || ' everything ' || ${pick(closers)} || '.'
  when 2 then ${pick(openers)} || ', ' || ${pick(topics, 2)} || ' ' || ${pick(verbs)}
    || ' a ' || ${pick(adjectives)} || ' ' || ${pick(nouns, 2)} || '.'
  when 3 then 'In ' || ${pick(places)} || ' I learned that every ' || ${pick(nouns, 2)}
    || ' is a ' || ${pick(adjectives)} || ' ' || ${pick(nouns, 2)} || ' in disguise.'
  when 4 then 'Is the ' || ${pick(nouns, 2)} || ' ' || ${pick(adjectives)}
    || ' enough for ' || ${pick(topics, 2)} || '?'
  else 'It took ' || (2 + floor(random() * 9)::int) || ' ' || ${pick(units)} || ' to notice that the '
    || ${pick(nouns, 2)} || ' ' || ${pick(adverbs)} || ' ' || ${pick(verbs)} || ' the '
    || ${pick(nouns, 2)} || '.'
end`;

/** A post title, in one of a few shapes; ASCII, so its slug is simple to make in SQL. */
const title = sql`case floor(random() * 9)::int
  when 0 then 'How we ' || ${pick(verbsPast)} || ' our ' || ${pick(nouns)} || ' in '
    || (2 + floor(random() * 10)::int) || ' ' || ${pick(units)}
  when 1 then 'Why ' || ${pick(topics, 2)} || ' ' || ${pick(verbs)} || ' the ' || ${pick(nouns)}
  when 2 then (3 + floor(random() * 8)::int) || ' things I learned about ' || ${pick(topics, 2)}
  when 3 then 'Notes on ' || ${pick(topics, 2)} || ' from ' || ${pick(places)}
  when 4 then 'A ' || ${pick(adjectives)} || ' guide to ' || ${pick(topics, 2)}
  when 5 then 'The ' || ${pick(adjectives)} || ' ' || ${pick(nouns)} || ' of ' || ${pick(places)}
  when 6 then 'Is ' || ${pick(topics, 2)} || ' ready for ' || ${pick(topics, 2)} || '?'
  when 7 then 'What ' || ${pick(places)} || ' taught me about ' || ${pick(topics, 2)}
  else initcap(${pick(adjectives)}) || ' ' || ${pick(nouns)} || ', ' || ${pick(verbsPast)} || ' '
    || ${pick(['quickly', 'slowly', 'at last', 'carefully', 'twice', 'again'])}
end`;

function insertPosts(from: number, to: number, tag: string, users: number, slots: number): SQL {
  return sql`
    with pool as materialized (
      select i, ${sentence} as text from generate_series(0, ${SENTENCES - 1}::int) as i
    ), p as materialized (
      select g,
             -- Skewed: the lowest-numbered users write most of the posts.
             floor(${users}::int * power(random(), 3))::int as author_n,
             -- 1 to 5 paragraphs, most posts 1 or 2.
             1 + floor(power(random(), 2) * 5)::int as paragraphs,
             date_trunc('minute', now() - ${span}
               * (1 - floor(random() * ${slots}::int) / ${slots}::float8)) as created_at,
             random() < 0.9 as published,
             -- Half are published as soon as written (on the same tied minutes), the others
             -- after a delay from a short list (ties again), or at once if that is to come.
             (array[0, 0, 0, 0, 10, 60, 1440, 4320])[1 + floor(random() * 8)::int]
               * interval '1 minute' as delay,
             ${title} as title
      from generate_series(${from}::int, ${to}::int) as g
    ), paragraph as (
      select g, k, 2 + floor(random() * 4)::int as sentences
      from p, generate_series(1, p.paragraphs) as k
    ), line as (
      select g, k, j, floor(random() * ${SENTENCES}::int)::int as i
      from paragraph, generate_series(1, paragraph.sentences) as j
    ), block as (
      select line.g, line.k,
             case when random() < 0.12 then '- ' || string_agg(pool.text, E'\\n- ' order by line.j)
                  else string_agg(pool.text, ' ' order by line.j) end as text
      from line join pool using (i)
      group by line.g, line.k
    ), body as (
      select g,
             string_agg(case when k > 1 and random() < 0.3
                          then '## ' || initcap(${pick(adjectives)} || ' ' || ${pick(nouns)})
                               || E'\\n\\n' || text
                          else text end,
                        E'\\n\\n' order by k)
             || case when random() < 0.01
                  then E'\\n\\nP.S. The word of the day is ' || ${pick(rareWords)} || '.'
                  else '' end as content
      from block
      group by g
    ), dated as (
      select p.*, body.content, a.id as author_id,
             case when not p.published then null
                  when p.created_at + p.delay <= now() then p.created_at + p.delay
                  else p.created_at end as published_at,
             random() < 0.3 as edited
      from p
      join body using (g)
      join seed_authors a on a.n = p.author_n
    ), timed as (
      select dated.*,
             case when edited then least(coalesce(published_at, created_at)
                                          + random() * interval '30 days', now())
                  else coalesce(published_at, created_at) end as updated_at
      from dated
    )
    insert into posts (author_id, title, content, slug, view_count, published_at, created_at,
                       updated_at, version)
    select author_id, title, content,
           trim(both '-' from regexp_replace(lower(title), '[^a-z0-9]+', '-', 'g'))
             || '-' || ${tag} || '-' || g,
           -- Views spread over orders of magnitude: most posts a few hundred, a few tens of
           -- thousands.
           case when published then floor(exp(random() * ln(50000)))::int - 1 else 0 end,
           published_at, created_at, updated_at,
           1 + published::int + case when edited then 1 + floor(random() * 3)::int else 0 end
    from timed`;
}
