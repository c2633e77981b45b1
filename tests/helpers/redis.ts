import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { TEST_JWT_SECRET } from './app.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { logCapture, type LogLine } from './logs.js';
import { observeResponses } from './observe.js';
import { freePort } from './values.js';

/** The shared Redis of the test machine: used with a unique key prefix, never stopped. */
export const SHARED_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix no other test (or deployment) uses. */
export function uniquePrefix(): string {
  return `test:${Date.now().toString(36)}:${randomBytes(4).toString('hex')}:`;
}

/** Deletes the keys under `prefix` on the Redis at `url`. */
export async function deleteKeys(url: string, prefix: string): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

/**
 * A redis-server of this test's own, on a free port, without persistence: it can be
 * killed (SIGKILL, as a crash) and started again on the same port. `stop()` in afterAll.
 */
export interface ThrowawayRedis {
  port: number;
  url: string;
  start(): Promise<void>;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export async function throwawayRedis(): Promise<ThrowawayRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const url = `redis://127.0.0.1:${port}`;
  const kill = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = once(running, 'exit');
    running.kill('SIGKILL');
    await exited;
  };
  return {
    port,
    url,
    async start() {
      if (child) throw new Error('already running');
      child = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        { stdio: 'ignore' },
      );
      // Ready when it answers PING.
      const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
      probe.on('error', () => undefined);
      try {
        for (let attempt = 0; ; attempt += 1) {
          try {
            await probe.connect();
            await probe.ping();
            return;
          } catch (error) {
            probe.disconnect();
            if (attempt >= 100) throw error;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
      } finally {
        probe.disconnect();
      }
    },
    kill,
    stop: kill,
  };
}

export interface RedisTestApp {
  app: FastifyInstance;
  /** The app's log lines (JSON, parsed), info and up. */
  logs: LogLine[];
  /** Contract violations and leaks seen since the last call. */
  violations(): string[];
}

/**
 * An app like useTestApp's on an existing test database (several apps may share one, as
 * instances of one deployment do), logging into `logs`.
 */
export async function redisTestApp(
  db: TestDatabase,
  env: Record<string, string>,
): Promise<RedisTestApp> {
  const { lines, stream } = logCapture();
  const config = loadConfig({
    NODE_ENV: 'test',
    JWT_SECRET: TEST_JWT_SECRET,
    MAX_EVENT_LOOP_DELAY_MS: '0',
    EMAIL_POLL_INTERVAL: '0',
    DATABASE_URL: db.url,
    ...env,
  });
  const app = await buildApp(config, {
    logger: { level: 'info', stream },
  });
  const observed = observeResponses(app);
  await app.ready();
  return { app, logs: lines, violations: () => observed.take() };
}

/**
 * Instances of one deployment for a test file: apps on one fresh database and one Redis
 * (the shared one under a key prefix of the file's own, or `redisUrl()`'s), one per entry
 * of `envs`, built in beforeAll; their answers checked against the contract after each
 * test; closed, the database dropped and the keys deleted in afterAll.
 */
export function useInstances(
  envs: readonly Record<string, string>[],
  options: { redisUrl?: () => string } = {},
): {
  readonly instances: RedisTestApp[];
  readonly apps: FastifyInstance[];
  /** The deployment's database (after beforeAll). */
  readonly databaseUrl: string;
} {
  const prefix = uniquePrefix();
  const instances: RedisTestApp[] = [];
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
    const redis = { REDIS_URL: options.redisUrl?.() ?? SHARED_REDIS_URL, REDIS_KEY_PREFIX: prefix };
    instances.push(
      ...(await Promise.all(envs.map((env) => redisTestApp(db!, { ...redis, ...env })))),
    );
  }, 60_000);
  afterEach(() => {
    expect(
      instances.flatMap((instance) => instance.violations()),
      'responses outside the contract',
    ).toEqual([]);
  });
  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.app.close()));
    await db?.drop();
    if (!options.redisUrl) await deleteKeys(SHARED_REDIS_URL, prefix);
  });
  return {
    instances,
    get apps() {
      return instances.map((instance) => instance.app);
    },
    get databaseUrl() {
      return db!.url;
    },
  };
}
