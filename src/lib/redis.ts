import type { Redis } from 'ioredis';
import { withTimeout } from './timeout.js';

/** What the Redis connection tells the operator (a pino logger fits). */
export interface RedisLog {
  warn(facts: Record<string, unknown>, message: string): void;
  info(facts: Record<string, unknown>, message: string): void;
}

export interface SharedRedis {
  readonly client: Redis;
  /** Whether the connection is up now (ready for commands). */
  isUp(): boolean;
  /**
   * Connects, and resolves once the connection is up or after `timeoutMs` whatever its
   * state (it goes on trying in the background): start-up waits this long at most for
   * counts to be shared from the first request. Call it once the process's start-up work
   * is done: a connection attempt made while the event loop is busy compiling would time
   * out before its answer is read.
   */
  start(timeoutMs: number): Promise<void>;
  /** A PING answered within `timeoutMs`, or a rejection. Never waits for a reconnection. */
  ping(timeoutMs: number): Promise<void>;
  /** Closes the connection (QUIT when it is up) and stops reconnecting. */
  close(): Promise<void>;
}

/**
 * Settings that keep a request from ever waiting on an absent Redis: no command is queued
 * while the connection is down (it fails at once), none is retried, and one sent to a
 * Redis that went silent fails after 250 ms. Reconnection goes on in the background, at
 * most a second apart, so the counts are shared again soon after Redis is back.
 */
const failFast = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  commandTimeout: 250,
  connectTimeout: 1000,
  retryStrategy: (attempt: number) => Math.min(attempt * 100, 1000),
  lazyConnect: true,
  // The commands of one turn of the event loop (a request's rate-limit count and its cache
  // lookup; under load, those of every request read in that turn) go in one write.
  enableAutoPipelining: true,
} as const;

/**
 * The Redis shared by every instance (rate-limit counters). It connects from `start()` and
 * then stays connected in the background:
 * a Redis that is down at start-up or goes away later is logged once per outage (a warning
 * when it is lost, an info line when it is back), never thrown at the caller.
 */
export async function createSharedRedis(url: string, log: RedisLog): Promise<SharedRedis> {
  // Loaded only with REDIS_URL: 40 ms of every start otherwise.
  const { Redis } = await import('ioredis');
  const client = new Redis(url, failFast);
  let state: 'connecting' | 'up' | 'down' = 'connecting';
  let closing = false;
  const waiting = new Set<() => void>();
  const where = redactedAddress(url);

  client.on('ready', () => {
    if (state === 'down')
      log.info({ redis: where }, 'redis is reachable again: rate-limit counts are shared again');
    state = 'up';
    for (const resolve of waiting) resolve();
    waiting.clear();
  });
  const lost = (error?: Error) => {
    if (closing || state === 'down') return;
    const facts = { redis: where, ...(error ? { message: error.message } : {}) };
    log.warn(
      facts,
      state === 'connecting'
        ? 'redis is unreachable at start-up: requests are served without rate limits until it is reachable'
        : 'redis connection lost: requests are served without rate limits until it is back',
    );
    state = 'down';
  };
  // Without an 'error' listener ioredis prints every failed attempt to the console.
  client.on('error', lost);
  client.on('close', () => lost());

  return {
    client,
    isUp: () => state === 'up',
    start(timeoutMs) {
      // Failures are reported through the 'error' listener above; reconnection is automatic.
      client.connect().catch(() => undefined);
      return state === 'up'
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const timer = setTimeout(done, timeoutMs);
            function done() {
              clearTimeout(timer);
              waiting.delete(done);
              resolve();
            }
            waiting.add(done);
          });
    },
    async ping(timeoutMs) {
      await withTimeout(client.ping(), timeoutMs, 'redis did not answer in time');
    },
    async close() {
      closing = true;
      for (const resolve of waiting) resolve();
      waiting.clear();
      if (client.status === 'ready') {
        try {
          await client.quit();
          return;
        } catch {
          // Lost on the way out: disconnect below.
        }
      }
      client.disconnect();
    },
  };
}

/** The URL without its password, for the logs. */
function redactedAddress(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = '';
    parsed.username = '';
    return parsed.toString();
  } catch {
    return 'redis';
  }
}
