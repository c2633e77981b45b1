/**
 * npm run bench:webhooks: the load test of the events → queue → webhook path. N events
 * (10,000 by default) are committed in batches to an outbox with 3 endpoints subscribed,
 * and the worker machinery of `npm run worker` (the relay, the job workers, signed sends
 * through the address-checking dispatcher) delivers them to 3 receivers in this process.
 * It prints, for each queue backend (PostgreSQL without REDIS_URL, BullMQ on Redis), the
 * deliveries a second from the first commit to the last receipt, the latency from each
 * event's commit to its receipt (p50, p99, max), and the duplicates: with nothing failing,
 * every event must reach every endpoint exactly once (the exit code is 1 otherwise).
 *
 *   npm run bench:webhooks
 *   npm run bench:webhooks -- --events 2000 --backend postgres --concurrency 20
 *
 * BENCH_DATABASE_URL names the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/…);
 * each run uses a new database, dropped afterwards. BENCH_REDIS_URL: the Redis (default
 * redis://127.0.0.1:6379), used under a key prefix of its own.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { loadConfig } from '../../src/config/index.js';
import { createDatabase } from '../../src/db/client.js';
import { createWebhookSecret } from '../../src/lib/webhooks/index.js';
import { buildWorker } from '../../src/worker-app.js';

const { values: options } = parseArgs({
  options: {
    events: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '3' },
    backend: { type: 'string', default: 'both' },
    concurrency: { type: 'string', default: '12' },
    batch: { type: 'string', default: '100' },
  },
});
const EVENTS = Number(options.events);
const ENDPOINTS = Number(options.endpoints);
const BATCH = Number(options.batch);
const serverUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Receiver {
  url: string;
  /** webhook-id → receipts. */
  counts: Map<string, number>;
  receivedAt: Map<string, number>;
  requests: number;
  server: Server;
}

async function startReceiver(): Promise<Receiver> {
  const receiver = { url: '', counts: new Map(), receivedAt: new Map(), requests: 0 } as Receiver;
  receiver.server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const id = String(request.headers['webhook-id']);
      receiver.requests += 1;
      receiver.counts.set(id, (receiver.counts.get(id) ?? 0) + 1);
      if (!receiver.receivedAt.has(id)) receiver.receivedAt.set(id, performance.now());
      response.writeHead(204).end();
    });
  });
  receiver.server.listen(0, '127.0.0.1');
  await once(receiver.server, 'listening');
  receiver.url = `http://127.0.0.1:${(receiver.server.address() as AddressInfo).port}/hooks`;
  return receiver;
}

async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** Commits the events in batches; answers each event's commit time (performance.now()). */
async function commitEvents(url: string): Promise<Map<string, number>> {
  const committedAt = new Map<string, number>();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  for (let done = 0; done < EVENTS; done += BATCH) {
    const ids = Array.from({ length: Math.min(BATCH, EVENTS - done) }, () => randomUUID());
    await client.query('begin');
    await client.query(
      `insert into events (id, type, subject_id, payload)
       select id, 'post.published', gen_random_uuid(),
              jsonb_build_object('id', id, 'title', 'Load test', 'slug', 'load-' || id)
       from unnest($1::uuid[]) as id`,
      [ids],
    );
    await client.query('commit');
    const at = performance.now();
    for (const id of ids) committedAt.set(id, at);
  }
  await client.end();
  return committedAt;
}

async function runOnce(backend: 'postgres' | 'redis') {
  const name = `bench_webhooks_${randomBytes(4).toString('hex')}`;
  await withAdmin((client) => client.query(`create database "${name}"`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const receivers = await Promise.all(Array.from({ length: ENDPOINTS }, startReceiver));
  const prefix = `bench:${name}:`;
  const config = loadConfig({
    NODE_ENV: 'production',
    DATABASE_URL: url.href,
    JWT_SECRET: randomBytes(32).toString('hex'),
    PUBLIC_URL: 'https://bench.example.test',
    LOG_LEVEL: 'warn',
    JOB_CONCURRENCY: options.concurrency,
    EVENTS_RELAY_INTERVAL: '1s',
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    ...(backend === 'redis' ? { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix } : {}),
  });
  const database = await createDatabase(config);
  await database.migrate();
  for (const receiver of receivers) {
    await database.db.execute(sql`
      insert into webhook_endpoints (url, event_types, secret, created_at)
      values (${receiver.url}, array['post.published'], ${createWebhookSecret()},
              now() - interval '1 minute')`);
  }
  const worker = await buildWorker(config, { database });
  await worker.ready();
  try {
    const started = performance.now();
    const committedAt = await commitEvents(url.href);
    const expected = EVENTS * ENDPOINTS;
    const deadline = Date.now() + 30 * 60_000;
    while (receivers.reduce((sum, r) => sum + r.counts.size, 0) < expected) {
      if (Date.now() > deadline) throw new Error('deliveries still missing after 30 minutes');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const last = Math.max(...receivers.flatMap((r) => [...r.receivedAt.values()]));
    const latencies = receivers
      .flatMap((r) => [...r.receivedAt].map(([id, at]) => at - (committedAt.get(id) ?? NaN)))
      .sort((a, b) => a - b);
    const duplicates = receivers.reduce((sum, r) => sum + r.requests - r.counts.size, 0);
    return {
      backend,
      deliveries: expected,
      perSecond: Math.round(expected / ((last - started) / 1000)),
      p50: Math.round(percentile(latencies, 50)),
      p99: Math.round(percentile(latencies, 99)),
      max: Math.round(latencies.at(-1) ?? NaN),
      duplicates,
      missing: expected - receivers.reduce((sum, r) => sum + r.counts.size, 0),
    };
  } finally {
    await worker.close();
    await database.close();
    for (const receiver of receivers) receiver.server.close();
    await withAdmin((client) => client.query(`drop database if exists "${name}" with (force)`));
  }
}

const backends =
  options.backend === 'both' ? (['postgres', 'redis'] as const) : [options.backend as 'postgres'];
const results = [];
for (const backend of backends) results.push(await runOnce(backend));
console.log(
  `\n${EVENTS} events × ${ENDPOINTS} endpoints, JOB_CONCURRENCY ${options.concurrency}, commits of ${BATCH}\n`,
);
console.log('| backend | deliveries/s | commit→receipt p50 | p99 | max | duplicates | missing |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of results) {
  console.log(
    `| ${r.backend} | ${r.perSecond} | ${r.p50} ms | ${r.p99} ms | ${r.max} ms | ${r.duplicates} | ${r.missing} |`,
  );
}
process.exit(results.every((r) => r.duplicates === 0 && r.missing === 0) ? 0 : 1);
