import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Config } from './config/index.js';
import { createDatabase, type Database, type DatabaseOptions } from './db/client.js';
import { createSharedRedis, type SharedRedis } from './lib/redis.js';
import { ResponseCache } from './lib/response-cache.js';

/**
 * What the API server connects to, and how. The database is opened by server.ts (before
 * the app exists, so that it starts sooner) or by buildApp (when given none), with the
 * same options; the shared Redis by buildApp.
 */

/**
 * The API server's database options: its problems go to the app's log once there is one,
 * and an embedded folder is this process's alone.
 */
export function serverDatabaseOptions(log: () => FastifyBaseLogger | undefined): DatabaseOptions {
  return {
    // The error carries the pool's client, connection settings and all: log what happened.
    onPoolError: (error: Error & { code?: unknown }) =>
      log()?.warn({ code: error.code, message: error.message }, 'database connection lost'),
    embedded: {
      label: 'the API server',
      exclusive: true,
      onError: (message) => log()?.error({ message }, 'embedded database'),
    },
  };
}

/** A database of the app's own, closed with it. */
export async function openDatabase(app: FastifyInstance, config: Config): Promise<Database> {
  const database = await createDatabase(
    config,
    serverDatabaseOptions(() => app.log),
  );
  app.addHook('onClose', () => database.close());
  // The embedded database belongs to this process: bring it up to date on every start.
  if (database.kind !== 'postgres') await database.migrate();
  return database;
}

/**
 * The Redis every instance shares (REDIS_URL), connected once the app is ready and closed
 * with it. Start-up waits a second at most for it: without it, the server starts anyway.
 */
export async function openRedis(app: FastifyInstance, url: string): Promise<SharedRedis> {
  const redis = await createSharedRedis(url, app.log.child({ component: 'redis' }));
  app.addHook('onReady', () => redis.start(1000));
  app.addHook('onClose', () => redis.close());
  return redis;
}

/**
 * The response cache in REDIS_URL's Redis (the API's, and the worker's for its relay's
 * notices); its metrics are the app's, decorated later.
 */
export function openResponseCache(
  app: FastifyInstance,
  config: Config,
  redis: SharedRedis,
): ResponseCache {
  const cache = new ResponseCache(
    redis,
    {
      ttlMs: config.cache.ttlMs,
      maxEntryBytes: config.cache.maxEntryBytes,
      timeoutMs: config.cache.redisTimeoutMs,
      fillWaitMs: 250,
      keyPrefix: config.redis?.keyPrefix ?? '',
    },
    app.log.child({ component: 'cache' }),
    () => app.metrics,
  );
  app.addHook('onClose', async () => cache.close());
  return cache;
}
