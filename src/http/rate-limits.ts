import rateLimit, { type FastifyRateLimitStore } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { operationsOf, type OpenApiDocument } from './contract.js';
import { AppError } from './errors.js';

/**
 * The operations that are not the API's traffic: the probes (orchestrators and load
 * balancers call them every few seconds), the metrics (a scraper, behind its own token)
 * and the documentation. They are never counted against the global limit nor shed under
 * load.
 */
export const OPERATIONAL_OPERATIONS: ReadonlySet<string> = new Set([
  'getHealth',
  'getReadiness',
  'getOpenApiDocument',
  'getOpenApiDocumentYaml',
  'getProblemType',
  'getMetrics',
]);

/**
 * The operationId of the API operation a request is routed to, or undefined for the
 * operational ones, the documentation pages and requests no operation matches.
 */
export type ApiOperationOf = (request: FastifyRequest) => string | undefined;

export function apiOperationLookup(spec: OpenApiDocument): ApiOperationOf {
  const byRoute = new Map<string, string>();
  for (const { operationId, method, path } of operationsOf(spec)) {
    if (OPERATIONAL_OPERATIONS.has(operationId)) continue;
    // Fastify's form of the path, as glue registers it: `{id}` → `:id`.
    byRoute.set(`${method} ${path.replace(/\{([^}]+)\}/g, ':$1')}`, operationId);
  }
  return (request) => {
    const url = request.routeOptions.url;
    return url === undefined ? undefined : byRoute.get(`${request.method} ${url}`);
  };
}

/**
 * What the rate limits report, for metrics. A listener must not throw; it is called on
 * the request's path, so it should only count.
 */
export interface RateLimitEvents {
  /**
   * A request refused with 429 by an IP limit: `limit` is `global` (RATE_LIMIT_MAX) or the
   * operationId whose own limit it used up; `operationId` is the operation asked for.
   */
  onRejected(listener: (limit: string, operationId: string | undefined) => void): void;
  /**
   * A counter could not be read from Redis (unreachable, or slower than 250 ms): the
   * request was served without that limit (fail open). Once per failed command.
   */
  onStoreError(listener: (error: Error) => void): void;
}

export interface RateLimitOptions {
  /** Requests per window a client IP may make to the API operations all together; null: none. */
  global: { max: number; windowSeconds: number } | null;
  /** The shared counters; null: each process counts in its own memory. */
  redis: { client: Redis; keyPrefix: string } | null;
  apiOperationOf: ApiOperationOf;
}

// A fixed window per key, as @fastify/rate-limit's own Redis store counts (INCR, and the
// window's expiry set by the first request of the window).
const incrementScript = `
local current = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if current == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {current, ttl}
`;

type IncrementingRedis = Redis & {
  cfaRateLimit(key: string, windowMs: number): Promise<[number, number]>;
};

/**
 * @fastify/rate-limit's store on Redis, with readable keys (`<prefix>rl:global:<ip>`,
 * `<prefix>rl:POST/api/auth/login:<ip>`) and every failed command reported (the plugin's
 * skipOnError then lets the request through).
 */
function sharedStore(
  redis: Redis,
  prefix: string,
  onError: (error: Error) => void,
): new () => FastifyRateLimitStore {
  if (!('cfaRateLimit' in redis)) {
    redis.defineCommand('cfaRateLimit', { numberOfKeys: 1, lua: incrementScript });
  }
  const counting = redis as IncrementingRedis;
  const storeAt = (keyPrefix: string): FastifyRateLimitStore => ({
    incr(key, callback, timeWindow) {
      counting.cfaRateLimit(keyPrefix + key, timeWindow).then(
        ([current, ttl]) => callback(null, { current, ttl }),
        (error: Error) => {
          onError(error);
          callback(error);
        },
      );
    },
    child(params) {
      // The plugin passes its merged settings; `routeInfo` is the route (empty for the
      // global limit, made with createRateLimit).
      const route = (params as unknown as { routeInfo?: { method?: unknown; url?: unknown } })
        .routeInfo;
      const scope =
        typeof route?.url === 'string' ? `${String(route.method)}${route.url}` : 'global';
      return storeAt(`${prefix}rl:${scope}:`);
    },
  });
  return class {
    constructor() {
      return storeAt(`${prefix}rl:`);
    }
  } as unknown as new () => FastifyRateLimitStore;
}

/**
 * Registers the IP rate limits: the global one (every API operation together, counted
 * first) and the per-operation ones (route `config.rateLimit`, see rateLimitRoute in
 * app.ts), each on its own counter. With Redis the counts are shared by every instance;
 * when Redis cannot be reached, requests are served without limits (fail open, at once:
 * see src/lib/redis.ts) and counted again as soon as it is back.
 */
export async function registerRateLimits(
  app: FastifyInstance,
  options: RateLimitOptions,
): Promise<RateLimitEvents> {
  const rejected: Array<(limit: string, operationId: string | undefined) => void> = [];
  const storeErrors: Array<(error: Error) => void> = [];
  const { redis, apiOperationOf } = options;

  await app.register(rateLimit, {
    global: false,
    skipOnError: true,
    ...(redis
      ? {
          store: sharedStore(redis.client, redis.keyPrefix, (error) => {
            for (const listener of storeErrors) listener(error);
          }),
        }
      : {}),
    onExceeded: (request) => {
      const operationId = apiOperationOf(request);
      for (const listener of rejected) listener(operationId ?? 'unknown', operationId);
    },
    errorResponseBuilder: (_request, context) =>
      new AppError(
        429,
        'RATE_LIMITED',
        'Too many requests',
        `Too many attempts. Try again in ${Math.ceil(context.ttl / 1000)} seconds.`,
      ),
  });

  const { global } = options;
  if (global) {
    const count = app.createRateLimit({ max: global.max, timeWindow: global.windowSeconds * 1000 });
    // Before every route's own hooks (and so before its own limit): a client over the
    // global limit uses up nothing else. Only its 429 carries the X-RateLimit-* headers
    // of this limit; other responses keep those of their operation's own limit, if any.
    app.addHook('onRequest', async (request) => {
      const operationId = apiOperationOf(request);
      if (operationId === undefined) return;
      const outcome = await count(request);
      if (outcome.isAllowed || !outcome.isExceeded) return;
      for (const listener of rejected) listener('global', operationId);
      const seconds = String(outcome.ttlInSeconds);
      throw new AppError(
        429,
        'RATE_LIMITED',
        'Too many requests',
        `Too many requests from this address. Try again in ${seconds} seconds.`,
        undefined,
        {
          'retry-after': seconds,
          'x-ratelimit-limit': String(outcome.max),
          'x-ratelimit-remaining': '0',
          'x-ratelimit-reset': seconds,
        },
      );
    });
  }

  return {
    onRejected: (listener) => void rejected.push(listener),
    onStoreError: (listener) => void storeErrors.push(listener),
  };
}
