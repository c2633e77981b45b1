import type { PoolConfig } from 'pg';

/**
 * Where the jobs are kept: Redis when there is one (REDIS_URL), the app's PostgreSQL
 * otherwise. Both run BullMQ's own Queue and Worker; only the connection differs.
 */
export type JobBackendSettings =
  | {
      kind: 'redis';
      url: string;
      /** REDIS_KEY_PREFIX: the queue's keys start with it, beside the rate limits'. */
      keyPrefix: string;
    }
  | {
      kind: 'postgres';
      /** The app's database (its connection string, or the embedded server's socket). */
      connection: Pick<PoolConfig, 'connectionString' | 'host' | 'port' | 'user' | 'database'>;
      /** BullMQ's tables live in a schema of their own, apart from drizzle's. */
      schema?: string;
      /**
       * Connections of each queue's and each worker's pool, besides a worker's LISTEN
       * connection (BullMQ's own, outside the pool): 4 by default.
       */
      poolMax?: number;
    };

export interface Backend {
  readonly kind: 'redis' | 'postgres';
  /** BullMQ's backend factory (undefined: its default, Redis). */
  readonly factory: unknown;
  readonly queueOptions: Record<string, unknown>;
  /** A Worker's options; each worker gets connections of its own from these. */
  readonly workerOptions: Record<string, unknown>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export const POSTGRES_SCHEMA = 'bullmq';

export async function openBackend(settings: JobBackendSettings): Promise<Backend> {
  return settings.kind === 'redis' ? openRedis(settings) : openPostgres(settings);
}

async function openRedis(settings: Extract<JobBackendSettings, { kind: 'redis' }>) {
  const { Redis } = await import('ioredis');
  // The producer fails at once while Redis is down (the relay then keeps the events in
  // PostgreSQL and retries) instead of queueing commands in memory.
  const producer = new Redis(settings.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (attempt: number) => Math.min(attempt * 200, 2000),
  });
  producer.on('error', () => undefined);
  const prefix = `${settings.keyPrefix}bull`;
  return {
    kind: 'redis' as const,
    factory: undefined,
    queueOptions: { connection: producer, prefix },
    // Options, not a client: each worker opens (and closes) connections of its own, and a
    // forced close cannot cut another worker's.
    workerOptions: { connection: workerConnection(settings.url), prefix },
    ping: async () => {
      await producer.ping();
    },
    close: async () => {
      producer.disconnect();
    },
  };
}

/**
 * ioredis options from a `redis://` or `rediss://` URL. A worker blocks on Redis for its
 * next job: BullMQ requires retries without limit there.
 */
function workerConnection(url: string): Record<string, unknown> {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    db: Number(parsed.pathname.slice(1) || 0),
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
    retryStrategy: (attempt: number) => Math.min(attempt * 200, 2000),
  };
}

async function openPostgres(settings: Extract<JobBackendSettings, { kind: 'postgres' }>) {
  const [{ createPostgresBackend }, { default: pg }] = await Promise.all([
    import('bullmq'),
    import('pg'),
  ]);
  class QuietClient extends pg.Client {
    constructor(config?: ConstructorParameters<typeof pg.Client>[0]) {
      super(config);
      this.on('error', () => undefined);
    }
  }
  const connection = {
    ...settings.connection,
    // BullMQ holds a pooled client between statements (its migrations at first use): a
    // connection the server ends then (a restart) emits 'error' on that client, with no
    // listener but this one, which would end the process. The statement that comes next
    // fails instead, and the queue's open with it (tried again at the next use).
    Client: QuietClient,
    schema: settings.schema ?? POSTGRES_SCHEMA,
    // BullMQ creates its schema and tables itself, under an advisory lock (several
    // instances starting at once migrate once).
    migrate: true,
    max: settings.poolMax ?? 4,
    // Connections idle for a second are closed: a queue at rest holds only the worker's
    // LISTEN connection (BullMQ's own), not a pool's worth of server processes.
    idleTimeoutMillis: 1000,
    connectionTimeoutMillis: 5000,
    keepAlive: true,
  };
  const probe = new pg.Pool({
    ...settings.connection,
    max: 1,
    idleTimeoutMillis: 1000,
    connectionTimeoutMillis: 2000,
  });
  probe.on('error', () => undefined);
  return {
    kind: 'postgres' as const,
    factory: createPostgresBackend,
    queueOptions: { connection },
    workerOptions: { connection },
    ping: async () => {
      await probe.query('select 1');
    },
    close: () => probe.end(),
  };
}
