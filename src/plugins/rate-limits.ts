import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import type {
  FastifyContextConfig,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler,
} from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import type { Config, RateLimit } from '../config/index.js';
import { AppError } from '../http/errors.js';
import type { OperationId } from '../http/handler-types.js';
import { operationOfRoute, type ApiOperationOf } from './api-operations.js';
import { sharedStore } from './rate-limit-store.js';
import { WindowCounts } from './window-counts.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Listeners for the rate limits' refusals and Redis failures (metrics). */
    rateLimits: RateLimitEvents;
  }
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

export interface RateLimitsOptions {
  /** Requests per window a client IP may make to the API operations all together; null: none. */
  global: Config['globalRateLimit'];
  /** The shared counters; null: each process counts in its own memory. */
  redis: { client: Redis; keyPrefix: string } | null;
  apiOperationOf: ApiOperationOf;
  /** Listeners given from the start (the metrics'): see RateLimitEvents. */
  onRejected?: (limit: string, operationId: string | undefined) => void;
  onStoreError?: (error: Error) => void;
}

/**
 * The route `config` of each operation with a limit of its own (RATE_LIMIT_*_MAX per
 * RATE_LIMIT_AUTH_WINDOW), by operationId: glue gives it to the operation's route. The
 * operations are config.rateLimits' keys, which the compiler checks against the spec's.
 */
export function operationLimits<K extends OperationId>(
  limits: Readonly<Record<K, RateLimit>>,
): Record<K, FastifyContextConfig> {
  const entries = (Object.entries(limits) as [K, RateLimit][]).map(
    ([operationId, { max, windowSeconds }]) =>
      [operationId, { rateLimit: { max, timeWindow: windowSeconds * 1000 } }] as const,
  );
  return Object.fromEntries(entries) as Record<K, FastifyContextConfig>;
}

/**
 * The key an operation's own limit counts a client under: the operation's route and the
 * client's address (`POST/api/auth/login:<ip>`), so that each operation has its own
 * counter in a store they share. Fastify gives every routed request its route; a limit
 * running for a request without one would count every operation on one key, so it fails
 * the request (a 500, logged) instead.
 */
function routeKey(request: FastifyRequest): string {
  const { method, url } = request.routeOptions;
  if (url === undefined) {
    throw new Error(
      `a rate limit ran for ${request.method} ${request.url}, which matched no route`,
    );
  }
  return `${String(method)}${url}:${normalizeIP(request.ip)}`;
}

const globalKey = (request: FastifyRequest) => `global:${normalizeIP(request.ip)}`;

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
 * The IP rate limits: the global one (every API operation together, counted first) and the
 * per-operation ones (route `config.rateLimit`, see operationLimits), each on its own
 * counter. With Redis the counts are shared by every instance; when Redis cannot be
 * reached, requests are served without limits (fail open, at once: see src/lib/redis.ts)
 * and counted again as soon as it is back. At the root: it decorates the app, and its
 * hooks reach the operations' routes wherever they are registered.
 */
export const rateLimits = fp<RateLimitsOptions>(
  async (app, options) => {
    const rejected: Array<(limit: string, operationId: string | undefined) => void> = [];
    const storeErrors: Array<(error: Error) => void> = [];
    if (options.onRejected) rejected.push(options.onRejected);
    if (options.onStoreError) storeErrors.push(options.onStoreError);
    const { redis, apiOperationOf } = options;

    await app.register(rateLimit, {
      global: false,
      skipOnError: true,
      keyGenerator: routeKey,
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

    if (options.global) {
      addGlobalLimit(app, options.global, options, (operationId) => {
        for (const listener of rejected) listener('global', operationId);
      });
    }

    app.decorate('rateLimits', {
      onRejected: (listener) => void rejected.push(listener),
      onStoreError: (listener) => void storeErrors.push(listener),
    } satisfies RateLimitEvents);
  },
  { name: 'rate-limits' },
);

/**
 * The global limit, as a hook of each API operation's route (the probes, docs and metrics
 * get none). `onRefused` hears of each refusal, with the operation asked for.
 */
function addGlobalLimit(
  app: FastifyInstance,
  global: RateLimit,
  { redis, apiOperationOf }: Pick<RateLimitsOptions, 'redis' | 'apiOperationOf'>,
  onRefused: (operationId: string) => void,
): void {
  const windowMs = global.windowSeconds * 1000;
  const refuse = (operationId: string, outcome: { max: number; ttlInSeconds: number }) => {
    onRefused(operationId);
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
    ? app.createRateLimit({ max: global.max, timeWindow: windowMs, keyGenerator: globalKey })
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
