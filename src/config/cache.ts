import { defineArea, durationPattern, milliseconds } from './area.js';

export interface CacheSettings {
  /**
   * The response cache of public reads (src/lib/response-cache.ts), in REDIS_URL's Redis.
   * Without REDIS_URL nothing is cached: a cache in each process could not be told of
   * another instance's changes before their responses are sent.
   */
  readonly cache: {
    readonly enabled: boolean;
    readonly ttlMs: number;
    readonly viewCountLagMs: number;
    readonly notFoundTtlMs: number;
    readonly maxEntryBytes: number;
    readonly redisTimeoutMs: number;
  };
}

export const cacheArea = defineArea({
  title: 'Response cache (with REDIS_URL)',
  properties: {
    CACHE: {
      type: 'boolean',
      default: true,
      description:
        "keep the answers of public reads (getPost, getPostBySlug, listPosts, listUserPosts, getUser, listUsers) in `REDIS_URL`'s Redis (`true`/`false`); without `REDIS_URL` nothing is cached. A change drops every answer it alters before its own response is sent; view counts alone may lag, by `CACHE_VIEW_COUNT_LAG` at most",
    },
    CACHE_TTL: {
      type: 'string',
      pattern: durationPattern,
      default: '60s',
      description:
        'the longest an answer is kept (a fifth less at random, so that answers kept together do not expire together)',
    },
    CACHE_VIEW_COUNT_LAG: {
      type: 'string',
      pattern: durationPattern,
      default: '5s',
      description:
        'how far behind a view count read through the cache may be: a post by slug and the listings are kept this long at most; a post by id as long as no view of it comes, then this long after its read at most',
    },
    CACHE_NOT_FOUND_TTL: {
      type: 'string',
      pattern: durationPattern,
      default: '2s',
      description: 'how long a 404 is kept (a change that creates the resource drops it at once)',
    },
    CACHE_MAX_ENTRY_BYTES: {
      type: 'integer',
      minimum: 1024,
      maximum: 16777216,
      default: 524288,
      description:
        'the largest answer kept, in bytes; larger ones are always read from the database',
    },
    CACHE_REDIS_TIMEOUT_MS: {
      type: 'integer',
      minimum: 5,
      maximum: 5000,
      default: 100,
      description:
        'how long a request waits for the cache at most; past that (or while Redis is down) it reads the database',
    },
  },
  settings: (values): CacheSettings => ({
    cache: Object.freeze({
      enabled: values.CACHE,
      ttlMs: milliseconds(values.CACHE_TTL),
      viewCountLagMs: milliseconds(values.CACHE_VIEW_COUNT_LAG),
      notFoundTtlMs: milliseconds(values.CACHE_NOT_FOUND_TTL),
      maxEntryBytes: values.CACHE_MAX_ENTRY_BYTES,
      redisTimeoutMs: values.CACHE_REDIS_TIMEOUT_MS,
    }),
  }),
});
