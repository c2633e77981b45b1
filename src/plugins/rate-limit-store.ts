import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
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
 * skipOnError then lets the request through). Each key names its own scope (the limits'
 * keyGenerator, rate-limits.ts), so every limit counts in this one store: its child for a
 * route is itself.
 */
export function sharedStore(
  redis: Redis,
  keyPrefix: string,
  onError: (error: Error) => void,
): FastifyRateLimitStoreCtor {
  if (!('cfaRateLimit' in redis)) {
    redis.defineCommand('cfaRateLimit', { numberOfKeys: 1, lua: incrementScript });
  }
  const counting = redis as IncrementingRedis;
  const prefix = `${keyPrefix}rl:`;
  return class SharedStore implements FastifyRateLimitStore {
    incr(
      key: string,
      callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
      timeWindow: number,
    ): void {
      counting.cfaRateLimit(prefix + key, timeWindow).then(
        ([current, ttl]) => callback(null, { current, ttl }),
        (error: Error) => {
          onError(error);
          callback(error);
        },
      );
    }

    child(): FastifyRateLimitStore {
      return this;
    }
  };
}
