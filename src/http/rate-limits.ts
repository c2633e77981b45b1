import rateLimit, { normalizeIP, type FastifyRateLimitStore } from '@fastify/rate-limit';
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler,
  RouteOptions,
} from 'fastify';
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
export type ApiOperationOf = ((request: FastifyRequest) => string | undefined) & {
  /** The same by Fastify route (`GET /api/users/:id`), for hooks added as routes are. */
  byRoute: ReadonlyMap<string, string>;
};

export function apiOperationLookup(spec: OpenApiDocument): ApiOperationOf {
  const byRoute = apiOperationsByRoute(spec);
  const lookup = (request: FastifyRequest) => {
    const url = request.routeOptions.url;
    return url === undefined ? undefined : byRoute.get(`${request.method} ${url}`);
  };
  return Object.assign(lookup, { byRoute });
}

/**
 * The API operations by Fastify route (`GET /api/users/:id`), as glue registers them, and
 * the HEAD twin of each GET.
 */
function apiOperationsByRoute(spec: OpenApiDocument): Map<string, string> {
  const byRoute = new Map<string, string>();
  for (const { operationId, method, path } of operationsOf(spec)) {
    if (OPERATIONAL_OPERATIONS.has(operationId)) continue;
    // Fastify's form of the path, as glue registers it: `{id}` → `:id`.
    const url = path.replace(/\{([^}]+)\}/g, ':$1');
    byRoute.set(`${method} ${url}`, operationId);
    // A GET's HEAD twin (app.ts, exposeHeadRoutes) is the same operation: counted, limited
    // and shed like it.
    if (method === 'GET') byRoute.set(`HEAD ${url}`, operationId);
  }
  return byRoute;
}

/**
 * The API operation a route being added serves (undefined for any other route), for hooks
 * that only API operations get: known once, when the route is added, not on every request.
 */
export function operationOfRoute(
  apiOperationOf: ApiOperationOf,
  route: Pick<RouteOptions, 'method' | 'url'>,
): string | undefined {
  // Glue adds one route per operation, with one method.
  if (typeof route.method !== 'string') return undefined;
  return apiOperationOf.byRoute.get(`${route.method.toUpperCase()} ${route.url}`);
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

/** What is left of a limit for a client: X-RateLimit-Limit, -Remaining and -Reset. */
interface Budget {
  limit: number;
  remaining: number;
  resetSeconds: number;
}

function sendBudget(reply: FastifyReply, budget: Budget): void {
  reply.header('x-ratelimit-limit', budget.limit);
  reply.header('x-ratelimit-remaining', budget.remaining);
  reply.header('x-ratelimit-reset', budget.resetSeconds);
}

/** The most clients the global limit counts at once in memory (the plugin's store holds 5,000). */
const LOCAL_KEYS = 10_000;

/**
 * Requests per key in fixed windows, in this process's memory (the plugin's in-memory
 * store counts the same way). It holds `capacity` keys at most: past that, the key whose
 * window started first is forgotten (its client starts a new window), so a flood of
 * addresses costs a bounded amount of memory.
 */
export class WindowCounts {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();

  constructor(
    private readonly windowMs: number,
    private readonly capacity: number,
  ) {}

  /** Counts one request of `key` at `now` (ms); its window as it now is. */
  hit(key: string, now: number): { count: number; resetAt: number } {
    let window = this.windows.get(key);
    if (window === undefined || window.resetAt <= now) {
      // A new window goes last: the map stays ordered by the start of its windows.
      if (window !== undefined) this.windows.delete(key);
      else if (this.windows.size >= this.capacity) {
        const oldest = this.windows.keys().next();
        if (!oldest.done) this.windows.delete(oldest.value);
      }
      window = { count: 0, resetAt: now + this.windowMs };
      this.windows.set(key, window);
    }
    window.count += 1;
    return window;
  }

  get size(): number {
    return this.windows.size;
  }
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
    const windowMs = global.windowSeconds * 1000;
    const refuse = (operationId: string, outcome: { max: number; ttlInSeconds: number }) => {
      for (const listener of rejected) listener('global', operationId);
      const seconds = String(outcome.ttlInSeconds);
      return new AppError(
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
    };
    // Shared through Redis: the plugin's limiter on the shared store (fail open, see above).
    // In memory, every request of every API operation passes here, so it is counted in
    // place (no promise, no lookup of the route's options: ~3.5 µs a request less).
    const countShared = redis
      ? app.createRateLimit({ max: global.max, timeWindow: windowMs })
      : null;
    const counts = new WindowCounts(windowMs, LOCAL_KEYS);
    // A route hook of each API operation (the probes, docs and metrics get none), first of
    // its hooks, so before its own limit: a client over the global limit uses up nothing
    // else. Every response of the operation carries the budget this limit leaves
    // (X-RateLimit-*), or, on an operation with a limit of its own, whichever of the two is
    // nearer its end (`nearer`, after the plugin's hook, which sends its own). A callback
    // hook: an async one would cost a promise and a turn of the microtask queue more on
    // every request.
    app.addHook('onRoute', (route) => {
      const operationId = operationOfRoute(apiOperationOf, route);
      if (operationId === undefined) return;
      // The global budget of each request of an operation with its own limit, until
      // `nearer` has compared it with the other (only those operations pay for this).
      const budgets =
        route.config?.rateLimit === undefined ? null : new WeakMap<FastifyRequest, Budget>();
      const allow = (request: FastifyRequest, reply: FastifyReply, budget: Budget) => {
        sendBudget(reply, budget);
        budgets?.set(request, budget);
      };
      const limit: onRequestHookHandler = countShared
        ? (request, reply, done) => {
            countShared(request).then((outcome) => {
              if (outcome.isAllowed) return done();
              if (outcome.isExceeded) return done(refuse(operationId, outcome));
              const { max, remaining, ttlInSeconds } = outcome;
              allow(request, reply, { limit: max, remaining, resetSeconds: ttlInSeconds });
              done();
            }, done);
          }
        : (request, reply, done) => {
            const now = Date.now();
            const window = counts.hit(normalizeIP(request.ip), now);
            const ttlInSeconds = Math.ceil((window.resetAt - now) / 1000);
            if (window.count > global.max) {
              return done(refuse(operationId, { max: global.max, ttlInSeconds }));
            }
            const remaining = global.max - window.count;
            allow(request, reply, { limit: global.max, remaining, resetSeconds: ttlInSeconds });
            done();
          };
      const hooks = route.onRequest === undefined ? [] : [route.onRequest].flat();
      route.onRequest = [limit, ...hooks];
      if (budgets !== null) {
        const nearer: onRequestHookHandler = (request, reply, done) => {
          const budget = budgets.get(request);
          budgets.delete(request);
          const own = Number(reply.getHeader('x-ratelimit-remaining'));
          if (budget !== undefined && !(own <= budget.remaining)) sendBudget(reply, budget);
          done();
        };
        route.onRequest.push(nearer);
      }
    });
  }

  return {
    onRejected: (listener) => void rejected.push(listener),
    onStoreError: (listener) => void storeErrors.push(listener),
  };
}
