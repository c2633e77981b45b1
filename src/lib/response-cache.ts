import { createHash, randomBytes } from 'node:crypto';
import type { Change, Changes } from './changes.js';
import type { SharedRedis } from './redis.js';
import { withTimeout } from './timeout.js';

/**
 * The shared response cache (REDIS_URL): answers of public reads kept in Redis, as they were
 * sent, and never served once a change altered them.
 *
 * Each answer depends on tags (`post:<id>`, `posts`, `authors`...). A tag has a generation,
 * a random token in Redis (made by the first lookup that finds none); an answer is kept under
 * a key that includes the generations of its tags as they were read *before* the database
 * was: a change, once committed, deletes the generation of each tag it alters before its own
 * response is sent, so every later lookup makes (or reads) new generations and misses
 * whatever was kept under the old ones, including an answer a slower reader is still filling
 * with what it read before the change. No entry is deleted: old ones are never read again
 * and expire. The generations' lookup, the
 * entry's and the fill's claim are one script, one round trip.
 *
 * A post's views are a late tag (CacheRequest.late): a view deletes its generation too, but
 * the entry keeps the generation it was read under (and Redis's clock then) instead of its
 * key naming it, so an answer read before a view is still served for the view-count lag
 * after its read, and one no view followed for as long as its TTL.
 *
 * Redis failing never fails a request: a lookup that does not answer within the timeout is
 * a miss (the request reads PostgreSQL; the cache is left alone for a second), and a change
 * whose generations could not be deleted keeps this instance off the cache until they are
 * (retried every 100 ms, then every generation is dropped, since whatever this instance
 * missed may be kept). Entries are kept under Redis's run id: a Redis restarted from a
 * snapshot never serves what it kept before. The relay tells the cache again of what each domain event changed (job-work.ts).
 * What remains: while this instance cannot reach Redis and others can, the others may serve
 * the answers of its changes that make no event (a rename, an edit's old slug) until their
 * TTL, at most CACHE_TTL.
 */

export type CachedOperation =
  'getPost' | 'getPostBySlug' | 'listPosts' | 'listUserPosts' | 'getUser' | 'listUsers';

/** An answer as it is kept: what a hit sends again, byte for byte. */
export interface CachedAnswer {
  status: number;
  /** The headers that belong to the representation (Content-Type, ETag, Cache-Control). */
  headers: Record<string, string>;
  /** As the handler's reply serialised it; as Redis gives it back (bytes) on a hit. */
  body: string | Buffer;
}

/** What a lookup is for: the operation, its request in a canonical form, its tags. */
export interface CacheRequest {
  operation: CachedOperation;
  /** The request's part that selects the answer (path and query values), canonical. */
  key: string;
  tags: readonly string[];
  /**
   * A tag whose changes only make the answer late (a post's views): an answer kept before
   * one is still served until `lagMs` after it was read, and as long as it likes (up to its
   * TTL) while none comes. Its generation is kept in the entry, not in its key.
   */
  late?: { tag: string; lagMs: number };
}

export type Lookup =
  | { kind: 'hit'; answer: CachedAnswer }
  /** A miss: the caller reads the database and gives the answer to `fill` (once). */
  | { kind: 'miss'; fill: (answer: CachedAnswer | null, ttlMs: number) => void }
  /** The cache cannot be used now: read the database, keep nothing. */
  | { kind: 'bypass' };

export interface ResponseCacheSettings {
  /** How long an answer is kept at most (jitter takes up to a fifth off). */
  ttlMs: number;
  /** The most bytes of an answer kept; larger ones are not. */
  maxEntryBytes: number;
  /** The longest a lookup, a fill or an invalidation waits for Redis. */
  timeoutMs: number;
  /** How long a request waits for another one filling the same answer before reading itself. */
  fillWaitMs: number;
  /** REDIS_KEY_PREFIX. */
  keyPrefix: string;
}

export interface ResponseCacheLog {
  warn(facts: Record<string, unknown>, message: string): void;
  info(facts: Record<string, unknown>, message: string): void;
}

export interface CacheMetricsRecorder {
  cacheLookup(operation: CachedOperation, result: 'hit' | 'miss' | 'bypass'): void;
  cacheFill(operation: CachedOperation): void;
  /** Answers of `operation` a change made unreachable (one per tag dropped). */
  cacheInvalidation(operation: CachedOperation): void;
  cacheError(): void;
}

/** The tags of the answers, and the operations whose answers each kind of tag names. */
export const cacheTags = {
  all: 'all',
  post: (id: string) => `post:${id}`,
  slug: (slug: string) => `slug:${slug}`,
  posts: 'posts',
  authors: 'authors',
  user: (id: string) => `user:${id}`,
  users: 'users',
  /** A post's view count (a late tag: see CacheRequest). */
  views: (id: string) => `views:${id}`,
} as const;

const postOperations: CachedOperation[] = [
  'getPost',
  'getPostBySlug',
  'listPosts',
  'listUserPosts',
];
const operationsOfTag: Record<string, readonly CachedOperation[]> = {
  post: ['getPost'],
  slug: ['getPostBySlug'],
  posts: ['listPosts', 'listUserPosts'],
  authors: postOperations,
  user: ['getUser', 'listUserPosts'],
  users: ['listUsers'],
  // A view makes no answer unreachable: the kept ones are served the lag longer.
  views: [],
  all: [...postOperations, 'getUser', 'listUsers'],
};

/** The tags a change alters. */
export function tagsOfChange(change: Change): string[] {
  switch (change.kind) {
    case 'post':
      return [
        cacheTags.post(change.id),
        ...change.slugs.map(cacheTags.slug),
        ...(change.listed ? [cacheTags.posts] : []),
      ];
    case 'user':
      return [
        cacheTags.user(change.id),
        cacheTags.users,
        ...(change.author ? [cacheTags.authors] : []),
      ];
    case 'view':
      return [cacheTags.views(change.id)];
  }
}

/**
 * KEYS: the tags' generation keys, then the late tag's (when ARGV[6] is 1). ARGV: the entry
 * key without generations, a token for the generations that do not exist yet, their TTL
 * (ms), a token for the fill's claim, its TTL (ms), 1 when there is a late tag, its lag
 * (ms). Returns the entry's key, the entry ('' when missing or too late), 1 when this caller
 * claimed the fill, and the stamp a fill keeps: the late tag's generation ('-' without one)
 * and Redis's clock (ms), read before the caller reads the database. An entry whose stamp
 * names another generation of the late tag is served until the lag has passed since its
 * read, then filled again.
 */
const lookupScript = `
local function generation(name, token)
  local gen = redis.call('GET', name)
  if not gen then
    gen = token
    redis.call('SET', name, gen, 'PX', ARGV[3])
  end
  return gen
end
local late = ARGV[6] == '1'
local hard = #KEYS
if late then hard = hard - 1 end
local gens = {}
for i = 1, hard do gens[i] = generation(KEYS[i], ARGV[2] .. ':' .. i) end
local key = ARGV[1] .. '|' .. table.concat(gens, '|')
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lateGen = '-'
if late then lateGen = generation(KEYS[#KEYS], ARGV[2] .. ':late') end
local stamp = lateGen .. ' ' .. now
local entry = redis.call('GET', key)
if entry then
  if not late then return {key, entry, 0, stamp} end
  local kept, readAt = string.match(entry, '^(%S+) (%d+)\\n')
  if kept == lateGen or now - tonumber(readAt) <= tonumber(ARGV[7]) then
    return {key, entry, 0, stamp}
  end
  -- Too late: gone, so that nobody waiting for its new fill reads it meanwhile.
  redis.call('DEL', key)
end
if redis.call('SET', key .. '|fill', ARGV[4], 'NX', 'PX', ARGV[5]) then
  return {key, '', 1, stamp}
end
return {key, '', 0, stamp}
`;

/**
 * The layout of the entries (encode, decode), part of their keys: entries of another layout,
 * kept by an older version of the server, are never read.
 */
const ENTRY_LAYOUT = 2;

const digest = (text: string) => createHash('sha256').update(text).digest('base64url');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An answer as one value: the lookup's stamp, status, headers (JSON), body. */
function encode(answer: CachedAnswer, stamp: string): string {
  return `${stamp}\n${answer.status}\n${JSON.stringify(answer.headers)}\n${answer.body.toString()}`;
}
/**
 * An answer from the bytes Redis keeps, its body a view of them: a hit is written to the
 * socket as it came, never decoded to a string and encoded again (measured: those two
 * conversions were up to a quarter of a hit's CPU time on a page of posts).
 */
function decode(entry: Buffer): CachedAnswer {
  const stamp = entry.indexOf(10);
  const first = entry.indexOf(10, stamp + 1);
  const second = entry.indexOf(10, first + 1);
  return {
    status: Number(entry.toString('latin1', stamp + 1, first)),
    headers: JSON.parse(entry.toString('utf8', first + 1, second)) as Record<string, string>,
    body: entry.subarray(second + 1),
  };
}

type LookupReply = [key: Buffer, entry: Buffer, claimed: 0 | 1, stamp: Buffer];

/** The lookup script as a command of the client: sent by its SHA1 (EVALSHA), bytes back. */
interface LookupCommand {
  cacheLookupBuffer(keys: number, ...args: (string | number)[]): Promise<LookupReply>;
}

export class ResponseCache implements Changes {
  /** Redis's run id: entries are kept under it (null: not known yet, the cache waits). */
  private epoch: string | null = null;
  /** Tags whose generation could not be dropped: this instance stays off the cache. */
  private readonly pending = new Set<string>();
  private retry: NodeJS.Timeout | undefined;
  private down = false;
  /** After a failure the cache is left alone for a second: no request waits on it meanwhile. */
  private restUntil = 0;
  /** Answers being filled by this instance's requests, by entry key, for its other requests. */
  private readonly filling = new Map<string, Promise<CachedAnswer | null>>();
  private readonly prefix: string;
  private readonly genTtlMs: number;
  /**
   * Tokens unique to this instance (new generations, fill claims): a random prefix made
   * once and a counter, not random bytes on every lookup.
   */
  private readonly instance = randomBytes(8).toString('base64url');
  private tokens = 0;
  private readonly client: LookupCommand;

  constructor(
    private readonly redis: SharedRedis,
    private readonly settings: ResponseCacheSettings,
    private readonly log: ResponseCacheLog,
    private readonly metrics: () => CacheMetricsRecorder,
  ) {
    this.prefix = `${settings.keyPrefix}cache:`;
    // Longer than any entry lives: a generation that expires only makes misses.
    this.genTtlMs = settings.ttlMs * 2 + 60_000;
    redis.client.defineCommand('cacheLookup', { lua: lookupScript });
    this.client = redis.client as unknown as LookupCommand;
    redis.client.on('ready', () => void this.connected());
    // A Redis that comes back may be another one (restarted from a snapshot): its run id is
    // read again before anything is served.
    redis.client.on('close', () => (this.epoch = null));
    if (redis.isUp()) void this.connected();
  }

  /** The answer kept for `request`, or what to do without it. */
  async lookup(request: CacheRequest): Promise<Lookup> {
    const { operation } = request;
    if (!this.usable()) {
      this.metrics().cacheLookup(operation, 'bypass');
      return { kind: 'bypass' };
    }
    let reply: LookupReply;
    try {
      reply = await this.run(this.lookupCommand(request));
    } catch (error) {
      this.failed(error);
      this.metrics().cacheLookup(operation, 'bypass');
      return { kind: 'bypass' };
    }
    this.recovered();
    const [keyBytes, entry, claimed, stamp] = reply;
    if (entry.length > 0) return this.hit(operation, decode(entry));
    const key = keyBytes.toString();
    if (claimed === 1) {
      this.metrics().cacheLookup(operation, 'miss');
      return { kind: 'miss', fill: this.filler(operation, key, stamp.toString()) };
    }
    // Another request fills it: wait for its answer a little, then read without it.
    const answer = await this.awaitFill(key);
    if (answer) return this.hit(operation, answer);
    this.metrics().cacheLookup(operation, 'bypass');
    return { kind: 'bypass' };
  }

  /** Drops the generations of every tag the changes alter (Changes, for the services). */
  async changed(...changes: Change[]): Promise<void> {
    const tags = new Set(changes.flatMap(tagsOfChange));
    await this.drop(tags);
  }

  close(): void {
    clearInterval(this.retry);
  }

  private hit(operation: CachedOperation, answer: CachedAnswer): Lookup {
    this.metrics().cacheLookup(operation, 'hit');
    return { kind: 'hit', answer };
  }

  private usable(): boolean {
    return (
      this.epoch !== null &&
      this.pending.size === 0 &&
      this.redis.isUp() &&
      Date.now() >= this.restUntil
    );
  }

  private token(): string {
    this.tokens += 1;
    return `${this.instance}.${this.tokens}`;
  }

  private lookupCommand(request: CacheRequest): Promise<LookupReply> {
    const { late } = request;
    const tags = [cacheTags.all, ...request.tags, ...(late ? [late.tag] : [])];
    const base = `${this.prefix}${this.epoch}:${ENTRY_LAYOUT}:${request.operation}:${digest(request.key)}`;
    return this.client.cacheLookupBuffer(
      tags.length,
      ...tags.map((tag) => `${this.prefix}gen:${tag}`),
      base,
      this.token(),
      this.genTtlMs,
      this.token(),
      this.settings.fillWaitMs * 2,
      late ? 1 : 0,
      late?.lagMs ?? 0,
    );
  }

  /** The fill of a claimed miss: kept in Redis, and given to this instance's waiters. */
  private filler(operation: CachedOperation, key: string, stamp: string) {
    let settle: (answer: CachedAnswer | null) => void = () => undefined;
    this.filling.set(key, new Promise((resolve) => (settle = resolve)));
    let done = false;
    return (answer: CachedAnswer | null, ttlMs: number) => {
      if (done) return;
      done = true;
      this.filling.delete(key);
      const entry = answer && encode(answer, stamp);
      const keep = entry !== null && Buffer.byteLength(entry) <= this.settings.maxEntryBytes;
      settle(keep ? answer : null);
      const pipeline = this.redis.client.pipeline();
      if (keep) pipeline.set(key, entry, 'PX', jittered(Math.min(ttlMs, this.settings.ttlMs)));
      pipeline.del(`${key}|fill`);
      // A SET that Redis refused (full, under `noeviction`) keeps nothing: not an outage.
      this.run(pipeline.exec()).then(
        (results) => keep && !results?.[0]?.[0] && this.metrics().cacheFill(operation),
        (error: unknown) => this.failed(error),
      );
    };
  }

  private async awaitFill(key: string): Promise<CachedAnswer | null> {
    const local = this.filling.get(key);
    if (local) {
      return withTimeout(local, this.settings.fillWaitMs, 'fill').catch(() => null);
    }
    const deadline = Date.now() + this.settings.fillWaitMs;
    while (Date.now() < deadline) {
      await sleep(10);
      try {
        const entry = await this.run(this.redis.client.getBuffer(key));
        if (entry !== null) return decode(entry);
      } catch (error) {
        this.failed(error);
        return null;
      }
    }
    return null;
  }

  private async drop(tags: Iterable<string>): Promise<void> {
    const list = [...tags];
    if (list.length === 0) return;
    try {
      if (!this.redis.isUp()) throw new Error('redis is not connected');
      // Deleted, not replaced: the next lookup makes a new one. A DEL is never refused for
      // memory (a SET is, under `noeviction` with Redis full), so a change can always drop
      // what it altered, whatever else Redis refuses.
      await this.run(this.redis.client.del(...list.map((tag) => `${this.prefix}gen:${tag}`)));
      for (const tag of list) {
        for (const operation of operationsOfTag[tag.split(':')[0]!] ?? [])
          this.metrics().cacheInvalidation(operation);
      }
    } catch (error) {
      this.failed(error);
      for (const tag of list) this.pending.add(tag);
      this.retrySoon();
    }
  }

  /**
   * Every 100 ms until the pending generations are dropped, then every generation (`all`):
   * soon after Redis answers again, before the other instances' own second of rest after
   * their failures is over.
   */
  private retrySoon(): void {
    if (this.retry) return;
    this.retry = setInterval(() => {
      if (!this.redis.isUp()) return;
      const tags = [...this.pending, cacheTags.all];
      this.pending.clear();
      void this.drop(tags).then(() => {
        if (this.pending.size > 0) return;
        clearInterval(this.retry);
        this.retry = undefined;
      });
    }, 100);
    this.retry.unref();
  }

  private async connected(): Promise<void> {
    try {
      const info = await this.run(this.redis.client.info('server'));
      const runId = /run_id:(\w+)/.exec(info)?.[1];
      if (!runId) throw new Error('redis did not give its run_id');
      this.epoch = runId;
      this.recovered();
    } catch (error) {
      this.failed(error);
    }
  }

  private run<T>(work: Promise<T>): Promise<T> {
    return withTimeout(work, this.settings.timeoutMs, 'redis did not answer in time');
  }

  private recovered(): void {
    if (!this.down) return;
    this.down = false;
    this.log.info({}, 'the response cache uses redis again');
  }

  /** Counted every time, logged once per outage. */
  private failed(error: unknown): void {
    this.metrics().cacheError();
    this.restUntil = Date.now() + 1000;
    if (this.down) return;
    this.down = true;
    this.log.warn(
      { err: error },
      'the response cache cannot use redis: reads go to the database until it can',
    );
  }
}

/** Up to a fifth less, so that answers kept at once do not all expire at once. */
function jittered(ttlMs: number): number {
  return Math.max(1, Math.round(ttlMs * (1 - Math.random() * 0.2)));
}
