/**
 * The reference server of `npm run bench`: what a careful developer writes by hand for the
 * benchmarked operations, without the contract machinery. Plain Fastify 5 and `pg`: SQL
 * written for each operation, named prepared statements, only the columns a response
 * needs, response schemas (fast-json-stringify), the same JWT library and options, the same
 * per-request session check, bcrypt (bcryptjs, same cost) on worker threads, the same
 * refresh-token rotation rules, the same security headers, ETag, Cache-Control and
 * X-Request-Id. For every benchmarked request it answers the body the API answers (the
 * bench checks that before measuring).
 *
 * It is not part of the API: it serves only what the bench sends, and its errors are
 * minimal problem documents. Settings come from the environment (set by the bench):
 * PORT, DATABASE_URL, JWT_SECRET, BCRYPT_COST, BCRYPT_THREADS, LOG_LEVEL, RATE_LIMIT_MAX.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import fastifyHelmet from '@fastify/helmet';
import fastifyJwt from '@fastify/jwt';
import fastifyRateLimit from '@fastify/rate-limit';
import bcrypt from 'bcryptjs';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import pg from 'pg';
import { Piscina } from 'piscina';
import type { HashTask } from './hash-worker.js';

const env = process.env;
const port = Number(env.PORT ?? 3334);
const cost = Number(env.BCRYPT_COST ?? 12);
const threads = Number(env.BCRYPT_THREADS ?? Math.max(1, availableParallelism() - 1));
const rateLimitMax = Number(env.RATE_LIMIT_MAX ?? 100);
const issuer = 'contract-first-api';
const expiresIn = 15 * 60;
const refreshTtlSeconds = 30 * 86400;
const idleSeconds = 7 * 86400;
const graceSeconds = 10;
const maxFailures = 10;
const failureWindowSeconds = 15 * 60;

const pool = new pg.Pool({
  connectionString: env.DATABASE_URL,
  max: 10,
  connectionTimeoutMillis: 5000,
  statement_timeout: 10_000,
  query_timeout: 11_000,
  idleTimeoutMillis: 30_000,
});
pool.on('error', () => undefined);

const hasher = new Piscina<HashTask, string | boolean>({
  filename: new URL('./hash-worker.js', import.meta.url).href,
  minThreads: 0,
  maxThreads: threads,
  idleTimeout: Number.POSITIVE_INFINITY,
  niceIncrement: 10,
});
const dummyHash = `$2b$${String(cost).padStart(2, '0')}$${'.'.repeat(53)}`;

// ---------------------------------------------------------------------------------------
// Schemas: the API's shapes, in its property order.

const nullableString = { type: ['string', 'null'] } as const;
const author = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    username: { type: 'string' },
    firstName: nullableString,
    lastName: nullableString,
  },
} as const;
const postProperties = (body: 'content' | 'excerpt') => ({
  id: { type: 'string' },
  title: { type: 'string' },
  [body]: { type: 'string' },
  slug: { type: 'string' },
  authorId: { type: 'string' },
  author,
  viewCount: { type: 'integer' },
  publishedAt: nullableString,
  createdAt: { type: 'string' },
  updatedAt: { type: 'string' },
});
const postSchema = { type: 'object', properties: postProperties('content') } as const;
const postPageSchema = {
  type: 'object',
  properties: {
    items: { type: 'array', items: { type: 'object', properties: postProperties('excerpt') } },
    nextCursor: nullableString,
  },
} as const;
const publicUser = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    username: { type: 'string' },
    firstName: nullableString,
    lastName: nullableString,
    createdAt: { type: 'string' },
  },
} as const;
const userSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    email: { type: 'string' },
    username: { type: 'string' },
    firstName: nullableString,
    lastName: nullableString,
    isActive: { type: 'boolean' },
    emailVerified: { type: 'boolean' },
    role: { type: 'string' },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
  },
} as const;
const tokenPairProperties = {
  accessToken: { type: 'string' },
  tokenType: { type: 'string' },
  expiresIn: { type: 'integer' },
  refreshToken: { type: 'string' },
  refreshTokenExpiresAt: { type: 'string' },
} as const;
const problem = {
  type: 'object',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
  },
} as const;
const uuidParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', format: 'uuid', maxLength: 36 } },
} as const;
const pageQuery = {
  limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
  cursor: { type: 'string', minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_-]+$' },
} as const;

// ---------------------------------------------------------------------------------------
// Helpers.

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    message: string,
  ) {
    super(message);
  }
}
const unauthorized = (detail: string) => new HttpError(401, 'Unauthorized', detail);

const iso = (date: Date | null) => (date === null ? null : date.toISOString());

const isoMillis = /^(?!0000)\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const encodeCursor = (at: string, id: string) =>
  Buffer.from(`${at}|${id}`, 'utf8').toString('base64url');

function decodeCursor(cursor: string): { at: string; id: string } {
  const [at, id, ...rest] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  if (
    rest.length > 0 ||
    !at ||
    !id ||
    !isoMillis.test(at) ||
    Number.isNaN(Date.parse(at)) ||
    new Date(at).toISOString() !== at ||
    !uuid.test(id)
  ) {
    throw new HttpError(400, 'Bad Request', 'The cursor is not one this server gave out.');
  }
  return { at, id };
}

const EXCERPT_LENGTH = 300;
function excerptOf(head: string): string {
  const chars = Array.from(head);
  if (chars.length <= EXCERPT_LENGTH) return head;
  const cut = chars.slice(0, EXCERPT_LENGTH).join('');
  const atWord = cut.replace(/\s+\S*$/u, '');
  return `${(atWord.length > 0 ? atWord : cut).trimEnd()}…`;
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

function query<R extends pg.QueryResultRow>(
  name: string,
  text: string,
  values: unknown[],
  client: pg.Pool | pg.PoolClient = pool,
) {
  return client.query<R>({ name, text, values });
}

// ---------------------------------------------------------------------------------------
// SQL.

const postColumns = `p.id, p.title, p.slug, p.author_id, p.view_count, p.published_at,
  p.created_at, p.updated_at, u.username, u.first_name, u.last_name`;

interface PostRow {
  id: string;
  title: string;
  slug: string;
  author_id: string;
  view_count: number;
  published_at: Date | null;
  created_at: Date;
  updated_at: Date;
  username: string;
  first_name: string | null;
  last_name: string | null;
}

const postByKey = (key: 'id' | 'slug') => `select ${postColumns}, p.content, p.version
  from posts p join users u on u.id = p.author_id where p.${key} = $1`;

const SEARCH_WINDOW = 2000;
const published = 'p.published_at is not null';
const after = '(p.published_at, p.id) < ($2::timestamptz, $3::uuid)';
/** The API's search plan: the newest rows in time order first, the GIN index for the rest. */
function searchIn(base: string, q: string, limit: string): string {
  const matches = `p.search @@ websearch_to_tsquery('simple'::regconfig, ${q})`;
  return `p.id in (
    with recent as materialized (
      select p.id, p.published_at as at, (${matches}) as hit from posts p
       where ${base} order by p.published_at desc nulls last, p.id desc nulls last
       limit ${SEARCH_WINDOW}
    ),
    fast as (select id from recent where hit order by at desc, id desc limit ${limit}),
    slow as (
      select p.id from posts p
       where ${base} and ${matches}
         and (select count(*) from recent) = ${SEARCH_WINDOW}
         and (select count(*) from fast) < ${limit}
       order by p.published_at desc nulls first, p.id desc nulls first limit ${limit}
    )
    select id from fast union select id from slow)`;
}
const listPosts = (where: string, limit: string) => `select ${postColumns},
  left(p.content, ${EXCERPT_LENGTH + 1}) as head
  from posts p join users u on u.id = p.author_id where ${where}
  order by p.published_at desc nulls last, p.id desc nulls last limit ${limit}`;
const postLists = {
  first: ['ref_posts_first', listPosts(published, '$1')],
  after: ['ref_posts_after', listPosts(`${published} and ${after}`, '$1')],
  searchFirst: ['ref_posts_search_first', listPosts(searchIn(published, '$2', '$1'), '$1')],
  searchAfter: [
    'ref_posts_search_after',
    listPosts(searchIn(`${published} and ${after}`, '$4', '$1'), '$1'),
  ],
} as const;

const userColumns = `u.id, u.email, u.username, u.first_name, u.last_name, u.is_active,
  u.email_verified, u.role, u.created_at, u.updated_at`;
interface UserRow {
  id: string;
  email: string;
  username: string;
  first_name: string | null;
  last_name: string | null;
  is_active: boolean;
  email_verified: boolean;
  role: string;
  created_at: Date;
  updated_at: Date;
}
const toUser = (row: UserRow) => ({
  id: row.id,
  email: row.email,
  username: row.username,
  firstName: row.first_name,
  lastName: row.last_name,
  isActive: row.is_active,
  emailVerified: row.email_verified,
  role: row.role,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});

const sessionState = `case when s.revoked_at is not null then 'revoked'
  when s.expires_at <= now() then 'expired'
  when s.last_used_at <= now() - ${idleSeconds} * interval '1 second' then 'idle'
  else 'live' end`;

// ---------------------------------------------------------------------------------------
// The server.

const app = Fastify({
  logger: {
    level: env.LOG_LEVEL ?? 'warn',
    redact: { paths: ['req.headers.authorization'], censor: '[redacted]' },
  },
  bodyLimit: 1024 * 1024,
  exposeHeadRoutes: false,
  routerOptions: { maxParamLength: 255 },
  genReqId: (req) => {
    const given = req.headers['x-request-id'];
    return typeof given === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(given)
      ? given
      : randomUUID();
  },
});
await app.register(fastifyHelmet, {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
  },
  xFrameOptions: { action: 'deny' },
  strictTransportSecurity: false,
});
await app.register(fastifyJwt, {
  secret: env.JWT_SECRET ?? '',
  sign: { algorithm: 'HS256', iss: issuer, aud: issuer, expiresIn },
  verify: {
    algorithms: ['HS256'],
    allowedIss: issuer,
    allowedAud: issuer,
    requiredClaims: ['exp', 'iss', 'aud', 'sub', 'sid'],
  },
});
await app.register(fastifyRateLimit, { global: false });

/**
 * The API's global per-client limit (RATE_LIMIT_MAX a minute per address, fixed windows
 * in memory) and the budget it sends on every response of an API route; the routes with
 * a limit of their own (login, refresh) then send the plugin's, as the API sends the
 * nearer of the two.
 */
const windows = new Map<string, { count: number; resetAt: number }>();
app.addHook('onRequest', (request, reply, done) => {
  reply.header('x-request-id', request.id);
  if (!request.url.startsWith('/api/')) return done();
  const now = Date.now();
  let window = windows.get(request.ip);
  if (window === undefined || window.resetAt <= now) {
    // At most 10,000 addresses, as the API: the one whose window started first goes.
    if (window !== undefined) windows.delete(request.ip);
    else if (windows.size >= 10_000) windows.delete(windows.keys().next().value!);
    window = { count: 0, resetAt: now + 60_000 };
    windows.set(request.ip, window);
  }
  window.count += 1;
  const reset = Math.ceil((window.resetAt - now) / 1000);
  if (window.count > rateLimitMax) {
    return done(new HttpError(429, 'Too Many Requests', 'Too many requests'));
  }
  reply.header('x-ratelimit-limit', rateLimitMax);
  reply.header('x-ratelimit-remaining', rateLimitMax - window.count);
  reply.header('x-ratelimit-reset', reset);
  done();
});
app.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
  const status =
    error instanceof HttpError
      ? error.status
      : (error.statusCode ?? 500) < 500
        ? error.statusCode!
        : 500;
  if (status >= 500) request.log.error({ err: error }, 'request failed');
  return reply
    .code(status)
    .type('application/problem+json')
    .send({ type: 'about:blank', title: error.name, status, detail: error.message });
});

/** The caller of getMe: a valid access token of a live session of an active account. */
async function authenticate(request: FastifyRequest): Promise<UserRow> {
  let claims: { sub?: unknown; sid?: unknown };
  try {
    claims = await request.jwtVerify();
  } catch {
    throw unauthorized('The access token is not valid.');
  }
  const { sub, sid } = claims;
  if (typeof sub !== 'string' || !uuid.test(sub) || typeof sid !== 'string' || !uuid.test(sid)) {
    throw unauthorized('The access token is not valid.');
  }
  const { rows } = await query<UserRow & { state: string }>(
    'ref_session_check',
    `select ${userColumns}, case when s.id is null then 'unknown' else ${sessionState} end as state
       from users u left join sessions s on s.id = $2 and s.user_id = u.id where u.id = $1`,
    [sub.toLowerCase(), sid.toLowerCase()],
  );
  const row = rows[0];
  if (!row || !row.is_active || row.state !== 'live') {
    throw unauthorized('The access token is not valid.');
  }
  return row;
}

/**
 * As the API answers its other public reads (listings, profiles): a strong ETag of the
 * representation, `public, no-cache`, and 304 when If-None-Match names the ETag.
 */
function sendRead<T>(request: FastifyRequest, reply: FastifyReply, body: T): T | FastifyReply {
  const etag = `"${sha256(JSON.stringify(body)).slice(0, 16)}"`;
  reply.header('etag', etag);
  reply.header('cache-control', 'public, no-cache');
  const given = request.headers['if-none-match'];
  if (given !== undefined && (given.trim() === '*' || given.includes(etag))) {
    return reply.code(304).send();
  }
  return body;
}

async function sendPost(
  request: FastifyRequest,
  reply: FastifyReply,
  row: (PostRow & { content: string; version: number }) | undefined,
) {
  if (!row) throw new HttpError(404, 'Not Found', 'Post not found.');
  if (row.published_at === null) {
    // A draft is its author's (or an admin's): anybody else is told it does not exist.
    const viewer = request.headers.authorization ? await authenticate(request) : null;
    if (!viewer || (viewer.id !== row.author_id && viewer.role !== 'admin')) {
      throw new HttpError(404, 'Not Found', 'Post not found.');
    }
  } else if (request.headers.authorization) {
    await authenticate(request);
  }
  const post = {
    id: row.id,
    title: row.title,
    content: row.content,
    slug: row.slug,
    authorId: row.author_id,
    author: {
      id: row.author_id,
      username: row.username,
      firstName: row.first_name,
      lastName: row.last_name,
    },
    viewCount: row.view_count,
    publishedAt: iso(row.published_at),
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
  const etag = `"${row.version}-${sha256(JSON.stringify(post)).slice(0, 16)}"`;
  reply.header('etag', etag);
  reply.header('cache-control', row.published_at ? 'public, no-cache' : 'private, no-cache');
  const given = request.headers['if-none-match'];
  if (given !== undefined && (given.trim() === '*' || given.includes(etag))) {
    return reply.code(304).send();
  }
  return post;
}

const postResponses = { 200: postSchema, '4xx': problem };

app.get<{ Params: { id: string } }>(
  '/api/posts/:id',
  { schema: { params: uuidParams, response: postResponses } },
  async (request, reply) => {
    const { rows } = await query<PostRow & { content: string; version: number }>(
      'ref_post_by_id',
      postByKey('id'),
      [request.params.id],
    );
    return sendPost(request, reply, rows[0]);
  },
);

app.get<{ Params: { slug: string } }>(
  '/api/posts/by-slug/:slug',
  {
    schema: {
      params: {
        type: 'object',
        required: ['slug'],
        properties: { slug: { type: 'string', minLength: 1, maxLength: 255 } },
      },
      response: postResponses,
    },
  },
  async (request, reply) => {
    const { rows } = await query<PostRow & { content: string; version: number }>(
      'ref_post_by_slug',
      postByKey('slug'),
      [request.params.slug],
    );
    return sendPost(request, reply, rows[0]);
  },
);

app.get<{ Querystring: { limit: number; cursor?: string; q?: string } }>(
  '/api/posts',
  {
    schema: {
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { ...pageQuery, q: { type: 'string', minLength: 1, maxLength: 200 } },
      },
      response: { 200: postPageSchema, '4xx': problem },
    },
  },
  async (request, reply) => {
    const { limit, cursor, q } = request.query;
    const position = cursor === undefined ? null : decodeCursor(cursor);
    const [name, text] =
      q === undefined
        ? position
          ? postLists.after
          : postLists.first
        : position
          ? postLists.searchAfter
          : postLists.searchFirst;
    const values: unknown[] = [limit + 1];
    if (position) values.push(position.at, position.id);
    if (q !== undefined) values.push(q);
    const { rows } = await query<PostRow & { head: string }>(name, text, values);
    const items = rows.slice(0, limit).map((row) => ({
      id: row.id,
      title: row.title,
      excerpt: excerptOf(row.head),
      slug: row.slug,
      authorId: row.author_id,
      author: {
        id: row.author_id,
        username: row.username,
        firstName: row.first_name,
        lastName: row.last_name,
      },
      viewCount: row.view_count,
      publishedAt: iso(row.published_at),
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
    }));
    const last = items.at(-1);
    return sendRead(request, reply, {
      items,
      nextCursor: rows.length > limit && last ? encodeCursor(last.publishedAt!, last.id) : null,
    });
  },
);

app.post<{ Params: { id: string } }>(
  '/api/posts/:id/views',
  {
    schema: {
      params: uuidParams,
      response: {
        200: { type: 'object', properties: { viewCount: { type: 'integer' } } },
        '4xx': problem,
      },
    },
  },
  async (request) => {
    const { rows } = await query<{ view_count: number }>(
      'ref_post_view',
      `update posts set view_count = view_count + 1
        where id = $1 and published_at is not null returning view_count`,
      [request.params.id],
    );
    if (!rows[0]) throw new HttpError(404, 'Not Found', 'Post not found.');
    return { viewCount: rows[0].view_count };
  },
);

interface PublicUserRow {
  id: string;
  username: string;
  first_name: string | null;
  last_name: string | null;
  created_at: Date;
}
const toPublicUser = (row: PublicUserRow) => ({
  id: row.id,
  username: row.username,
  firstName: row.first_name,
  lastName: row.last_name,
  createdAt: row.created_at.toISOString(),
});

app.get<{ Params: { id: string } }>(
  '/api/users/:id',
  { schema: { params: uuidParams, response: { 200: publicUser, '4xx': problem } } },
  async (request, reply) => {
    const { rows } = await query<PublicUserRow>(
      'ref_user_by_id',
      'select id, username, first_name, last_name, created_at from users where id = $1',
      [request.params.id],
    );
    if (!rows[0]) throw new HttpError(404, 'Not Found', 'User not found.');
    return sendRead(request, reply, toPublicUser(rows[0]));
  },
);

app.get<{ Querystring: { limit: number; cursor?: string } }>(
  '/api/users',
  {
    schema: {
      querystring: { type: 'object', additionalProperties: false, properties: pageQuery },
      response: {
        200: {
          type: 'object',
          properties: { items: { type: 'array', items: publicUser }, nextCursor: nullableString },
        },
        '4xx': problem,
      },
    },
  },
  async (request, reply) => {
    const { limit, cursor } = request.query;
    const position = cursor === undefined ? null : decodeCursor(cursor);
    const columns = 'select id, username, first_name, last_name, created_at from users';
    const order = 'order by created_at, id limit $1';
    const { rows } = position
      ? await query<PublicUserRow>(
          'ref_users_after',
          `${columns} where (created_at, id) > ($2::timestamptz, $3::uuid) ${order}`,
          [limit + 1, position.at, position.id],
        )
      : await query<PublicUserRow>('ref_users_first', `${columns} ${order}`, [limit + 1]);
    const items = rows.slice(0, limit).map(toPublicUser);
    const last = items.at(-1);
    return sendRead(request, reply, {
      items,
      nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null,
    });
  },
);

app.get(
  '/api/auth/me',
  { schema: { response: { 200: userSchema, '4xx': problem } } },
  async (request) => toUser(await authenticate(request)),
);

const newRefreshToken = () => {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: sha256(token) };
};
const noStore = 'no-store';

app.post<{ Body: { email: string; password: string } }>(
  '/api/auth/login',
  {
    config: { rateLimit: { max: rateLimitMax, timeWindow: 60_000 } },
    schema: {
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['email', 'password'],
        properties: {
          email: { type: 'string', minLength: 1, maxLength: 254 },
          password: { type: 'string', minLength: 1, maxLength: 1024 },
        },
      },
      response: {
        200: { type: 'object', properties: { ...tokenPairProperties, user: userSchema } },
        '4xx': problem,
      },
    },
  },
  async (request, reply) => {
    const { email, password } = request.body;
    const invalid = () => new HttpError(401, 'Unauthorized', 'Wrong email or password.');
    // Failed logins per address (counted before the password is checked, cleared on success).
    const counted = await query<{ failures: number }>(
      'ref_login_failures_count',
      `insert into login_failures (email_key, failures, window_started_at)
         values (left(lower($1), 254), 1, now())
       on conflict (email_key) do update set
         failures = case when login_failures.window_started_at
           + ${failureWindowSeconds} * interval '1 second' <= now() then 1
           else login_failures.failures + 1 end,
         window_started_at = case when login_failures.window_started_at
           + ${failureWindowSeconds} * interval '1 second' <= now() then now()
           else login_failures.window_started_at end
       returning failures`,
      [email],
    );
    if (counted.rows[0]!.failures > maxFailures) {
      throw new HttpError(429, 'Too Many Requests', 'Too many failed logins.');
    }
    const { rows } = await query<UserRow & { password_hash: string }>(
      'ref_user_by_email',
      `select ${userColumns}, u.password_hash from users u where lower(u.email) = lower($1)`,
      [email],
    );
    const user = rows[0];
    const fits = Buffer.byteLength(password, 'utf8') <= 72;
    const matches = (await hasher.run({
      op: 'compare',
      password,
      hash: user?.password_hash ?? dummyHash,
    })) as boolean;
    if (!user || !fits || !matches) throw invalid();
    await query(
      'ref_login_failures_clear',
      'delete from login_failures where email_key = left(lower($1), 254)',
      [email],
    );
    if (!user.is_active) throw new HttpError(403, 'Forbidden', 'The account is disabled.');
    if (bcrypt.getRounds(user.password_hash) < cost) {
      const rehashed = (await hasher.run({ op: 'hash', password, cost })) as string;
      await pool.query('update users set password_hash = $2 where id = $1', [user.id, rehashed]);
    }
    const refresh = newRefreshToken();
    const started = await query<{ id: string; expires_at: Date }>(
      'ref_session_start',
      `with s as (
         insert into sessions (user_id, user_agent, ip_address, expires_at)
         values ($1, $2, $3, now() + ${refreshTtlSeconds} * interval '1 second')
         returning id, expires_at
       ), t as (insert into refresh_tokens (session_id, token_hash) select id, $4 from s)
       select id, expires_at from s`,
      [
        user.id,
        request.headers['user-agent']?.replace(/\0/g, '').slice(0, 512) || null,
        request.ip.slice(0, 45) || null,
        refresh.hash,
      ],
    );
    const session = started.rows[0]!;
    reply.header('cache-control', noStore);
    return {
      accessToken: app.jwt.sign({ sub: user.id, role: user.role, sid: session.id }),
      tokenType: 'Bearer',
      expiresIn,
      refreshToken: refresh.token,
      refreshTokenExpiresAt: session.expires_at.toISOString(),
      user: toUser(user),
    };
  },
);

interface TokenRow {
  id: string;
  used_at: Date | null;
  revoked_at: Date | null;
  replaced_by: string | null;
  in_grace: boolean | null;
  session_id: string;
  user_id: string;
  expires_at: Date;
  state: string;
  is_active: boolean;
  role: string;
}

/**
 * Refresh-token rotation, the API's rules (RFC 9700 §4.14.2): a token works once; a used
 * one presented again ends its session, unless it is a retry within the grace period of a
 * token whose successor is unused (that successor is then replaced). The session's row is
 * locked first, so that exchanges within one session run one after the other.
 */
async function rotate(presentedHash: string, successorHash: string) {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const { rows } = await query<TokenRow>(
      'ref_refresh_lookup',
      `select t.id, t.used_at, t.revoked_at, t.replaced_by,
              t.used_at > now() - ${graceSeconds} * interval '1 second' as in_grace,
              s.id as session_id, s.user_id, s.expires_at, ${sessionState} as state,
              u.is_active, u.role
         from refresh_tokens t
         join sessions s on s.id = t.session_id
         join users u on u.id = s.user_id
        where t.token_hash = $1
        for update of s, t`,
      [presentedHash],
      client,
    );
    const token = rows[0];
    let outcome: TokenRow | string;
    if (!token) outcome = 'The refresh token is not valid. Log in again.';
    else if (!token.is_active) outcome = 'The account of this refresh token is disabled.';
    else if (token.state !== 'live') outcome = 'The session of this refresh token has ended.';
    else if (token.revoked_at === null && token.used_at === null) {
      await query(
        'ref_refresh_rotate',
        `with successor as (
           insert into refresh_tokens (session_id, token_hash) values ($1, $2) returning id
         ), used as (
           update refresh_tokens set used_at = now(), replaced_by = (select id from successor)
            where id = $3
         )
         update sessions set last_used_at = now() where id = $1`,
        [token.session_id, successorHash, token.id],
        client,
      );
      outcome = token;
    } else {
      const retry =
        token.revoked_at === null && token.in_grace === true && token.replaced_by !== null
          ? await client.query<{ id: string }>(
              `update refresh_tokens set revoked_at = now()
                where id = $1 and used_at is null and revoked_at is null returning id`,
              [token.replaced_by],
            )
          : null;
      if (retry?.rows[0]) {
        await client.query(
          `with successor as (
             insert into refresh_tokens (session_id, token_hash) values ($1, $2) returning id
           ), replaced as (
             update refresh_tokens set replaced_by = (select id from successor) where id = $3
           )
           update sessions set last_used_at = now() where id = $1`,
          [token.session_id, successorHash, token.id],
        );
        outcome = token;
      } else {
        await client.query(
          'update sessions set revoked_at = now() where id = $1 and revoked_at is null',
          [token.session_id],
        );
        outcome = 'This refresh token was already used. Its session has been ended.';
      }
    }
    await client.query('commit');
    return outcome;
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

app.post<{ Body: { refreshToken: string } }>(
  '/api/auth/refresh',
  {
    config: { rateLimit: { max: rateLimitMax, timeWindow: 60_000 } },
    schema: {
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['refreshToken'],
        properties: { refreshToken: { type: 'string', minLength: 1, maxLength: 256 } },
      },
      response: { 200: { type: 'object', properties: tokenPairProperties }, '4xx': problem },
    },
  },
  async (request, reply) => {
    const successor = newRefreshToken();
    const outcome = await rotate(sha256(request.body.refreshToken), successor.hash);
    if (typeof outcome === 'string') throw unauthorized(outcome);
    reply.header('cache-control', noStore);
    return {
      accessToken: app.jwt.sign({
        sub: outcome.user_id,
        role: outcome.role,
        sid: outcome.session_id,
      }),
      tokenType: 'Bearer',
      expiresIn,
      refreshToken: successor.token,
      refreshTokenExpiresAt: outcome.expires_at.toISOString(),
    };
  },
);

app.get('/health', async () => ({ status: 'ok' }));

const close = async () => {
  await app.close();
  await hasher.destroy();
  await pool.end();
  process.exit(0);
};
process.once('SIGTERM', () => void close());
process.once('SIGINT', () => void close());

await app.listen({ port, host: '127.0.0.1' });
