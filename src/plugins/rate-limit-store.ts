import type { FastifyRateLimitStore } from '@fastify/rate-limit';
import type { Redis } from 'ioredis';

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
export function sharedStore(
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
