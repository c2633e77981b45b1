/**
 * npm run bench:webhooks: the load test of the events → queue → webhook path. The worker
 * machinery of `npm run worker` (the relay, the job workers, signed sends through the
 * address-checking dispatcher) delivers `post.published` events to 3 receivers in this
 * process, once per queue backend (PostgreSQL without REDIS_URL, BullMQ on Redis), in
 * three phases on the same database:
 *
 * - burst: N events (10,000) committed in transactions of 100, as fast as they go; its
 *   figure is the throughput, deliveries a second from the first commit to the last receipt
 *   (its latencies are mostly the wait in the backlog);
 * - trickle: 5 events a second, one per transaction, for 20 s: the latency with nothing
 *   queued, the reference of the next phase;
 * - steady: events one per transaction at a fixed rate, by default half the burst's
 *   throughput, for 60 s: the latency from commit to receipt (p50, p95, p99, max) under a
 *   load the worker sustains, and its ratio to the trickle's.
 *
 * Every event must reach every endpoint exactly once (the exit code is 1 otherwise). Each
 * delivery's time is also split into its stages, from the database's timestamps: the
 * relay's wait (commit → relayed_at), the event's job (→ the delivery row's created_at),
 * the attempt's job (→ its claim, last_attempt_at) and the send (→ the receiver's receipt).
 * The events are inserted by a connection of the bench's own, as by an API apart from the
 * worker: the relay hears of them by the insert's notification (LISTEN/NOTIFY).
 *
 *   npm run bench:webhooks
 *   npm run bench:webhooks -- --quick                     # 1,000 events, 10 s steady, 5 s trickle
 *   npm run bench:webhooks -- --events 2000 --seconds 30 --rate 40 --backend redis
 *   npm run bench:webhooks -- --endpoint-concurrency 12   # WEBHOOK_ENDPOINT_CONCURRENCY (default 4)
 *
 * Options: --events (burst), --batch (its transactions), --seconds (steady), --rate (steady
 * events a second; else --load × the burst's, default 0.5), --trickle-seconds (0: none),
 * --endpoints, --concurrency (JOB_CONCURRENCY, 12), --endpoint-concurrency
 * (WEBHOOK_ENDPOINT_CONCURRENCY; its default, 4, without it), --relay-interval
 * (EVENTS_RELAY_INTERVAL, the relay's safety-net poll; its default, 5s, without it), --backend
 * (postgres, redis, both).
 *
 * BENCH_DATABASE_URL names the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/…);
 * each backend's run uses a new database, dropped afterwards. BENCH_REDIS_URL: the Redis
 * (default redis://127.0.0.1:6379), under a key prefix of its own, deleted afterwards. The
 * tables go to stdout and to bench-results/webhooks-<time>.{md,json} and webhooks-latest.*.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sql } from 'drizzle-orm';
import type pg from 'pg';
import { loadConfig } from '../../src/config/index.js';
import { createDatabase, type Database } from '../../src/db/client.js';
import { createWebhookSecret } from '../../src/lib/webhooks/index.js';
import { buildWorker } from '../../src/worker-app.js';
import {
  burstTable,
  stageTable,
  steadyTable,
  summarizePhase,
  type BackendResult,
  type Delivery,
  type PhaseResult,
} from './webhooks-report.js';
import { deleteRedisKeys, withClient } from './servers.js';
import { writeResults } from './helper.js';

const { values: options } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    events: { type: 'string' },
    batch: { type: 'string', default: '100' },
    seconds: { type: 'string' },
    rate: { type: 'string' },
    load: { type: 'string', default: '0.5' },
    'trickle-seconds': { type: 'string' },
    endpoints: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '12' },
    'relay-interval': { type: 'string' },
    'endpoint-concurrency': { type: 'string' },
    backend: { type: 'string', default: 'both' },
  },
});
const quick = options.quick;
const settings = {
  events: Number(options.events ?? (quick ? 1_000 : 10_000)),
  batch: Number(options.batch),
  steadySeconds: Number(options.seconds ?? (quick ? 10 : 60)),
  rate: options.rate === undefined ? undefined : Number(options.rate),
  load: Number(options.load),
  trickleSeconds: Number(options['trickle-seconds'] ?? (quick ? 5 : 20)),
  trickleRate: 5,
  endpoints: Number(options.endpoints),
  concurrency: options.concurrency,
  relayInterval: options['relay-interval'],
  endpointConcurrency: options['endpoint-concurrency'],
};
const serverUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const resultsDir = join(fileURLToPath(new URL('../..', import.meta.url)), 'bench-results');

/** Milliseconds since 1970, below the millisecond: comparable with the database's clock. */
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const started = Date.now();
const say = (message: string) =>
  console.log(`[${((Date.now() - started) / 1000).toFixed(0)} s] ${message}`);

interface Receiver {
  url: string;
  /** webhook-id (the event's id) → receipts. */
  counts: Map<string, number>;
  /** webhook-id → the first receipt's time (now()). */
  receivedAt: Map<string, number>;
  server: Server;
}

async function startReceiver(): Promise<Receiver> {
  const receiver = { url: '', counts: new Map(), receivedAt: new Map() } as Receiver;
  receiver.server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const id = String(request.headers['webhook-id']);
      receiver.counts.set(id, (receiver.counts.get(id) ?? 0) + 1);
      if (!receiver.receivedAt.has(id)) receiver.receivedAt.set(id, now());
      response.writeHead(204).end();
    });
  });
  receiver.server.listen(0, '127.0.0.1');
  await once(receiver.server, 'listening');
  receiver.url = `http://127.0.0.1:${(receiver.server.address() as AddressInfo).port}/hooks`;
  return receiver;
}

const insertEvents = `insert into events (id, type, subject_id, payload)
  select id, 'post.published', gen_random_uuid(),
         jsonb_build_object('id', id, 'title', 'Load test', 'slug', 'load-' || id)
  from unnest($1::uuid[]) as id`;

/** The burst: the events in transactions of `batch`, as fast as they go. */
async function commitBurst(client: pg.Client, committedAt: Map<string, number>): Promise<void> {
  for (let done = 0; done < settings.events; done += settings.batch) {
    const ids = Array.from({ length: Math.min(settings.batch, settings.events - done) }, () =>
      randomUUID(),
    );
    await client.query('begin');
    await client.query(insertEvents, [ids]);
    await client.query('commit');
    const at = now();
    for (const id of ids) committedAt.set(id, at);
  }
}

/**
 * `rate` events a second for `seconds`, each in a transaction of its own, each at its time
 * (an event that falls behind goes at once: the rate committed is reported).
 */
async function commitAtRate(
  client: pg.Client,
  committedAt: Map<string, number>,
  rate: number,
  seconds: number,
): Promise<void> {
  const count = Math.max(1, Math.round(rate * seconds));
  const start = now();
  for (let i = 0; i < count; i += 1) {
    const wait = start + (i * 1000) / rate - now();
    if (wait > 0) await sleep(wait);
    const id = randomUUID();
    await client.query(insertEvents, [[id]]);
    committedAt.set(id, now());
  }
}

/** Waits until every event of the phase reached every receiver, or the deadline. */
async function awaitReceipts(ids: string[], receivers: Receiver[], deadlineMs: number) {
  const deadline = now() + deadlineMs;
  const missing = () =>
    receivers.reduce((sum, r) => sum + ids.filter((id) => !r.receivedAt.has(id)).length, 0);
  while (missing() > 0 && now() < deadline) await sleep(200);
}

/** Each delivery of the phase's events: its commit, its stages' timestamps and its receipt. */
async function deliveriesOf(
  url: string,
  committedAt: Map<string, number>,
  receivers: Receiver[],
): Promise<Delivery[]> {
  const result = await withClient(url, (client) =>
    client.query<Record<string, string | null>>(
      `select e.id, w.url,
              extract(epoch from e.relayed_at) * 1000 as relayed,
              extract(epoch from d.created_at) * 1000 as created,
              extract(epoch from d.last_attempt_at) * 1000 as claimed
       from webhook_deliveries d
       join events e on e.id = d.event_id
       join webhook_endpoints w on w.id = d.endpoint_id
       where e.id = any($1::uuid[])`,
      [[...committedAt.keys()]],
    ),
  );
  const byUrl = new Map(receivers.map((r) => [r.url, r]));
  return result.rows.flatMap((row) => {
    const id = String(row.id);
    const received = byUrl.get(String(row.url))?.receivedAt.get(id);
    if (received === undefined) return [];
    return [
      {
        committed: committedAt.get(id)!,
        relayed: Number(row.relayed),
        created: Number(row.created),
        claimed: Number(row.claimed),
        received,
      },
    ];
  });
}

/** Receipts of the phase's events beyond the first, and deliveries that never came. */
function exactlyOnce(ids: string[], receivers: Receiver[]) {
  let duplicates = 0;
  let missing = 0;
  for (const receiver of receivers) {
    for (const id of ids) {
      const count = receiver.counts.get(id) ?? 0;
      if (count === 0) missing += 1;
      else duplicates += count - 1;
    }
  }
  return { duplicates, missing };
}

interface Phase {
  name: 'burst' | 'trickle' | 'steady';
  /** Events a second (burst: as fast as they go). */
  rate: number | null;
  committedAt: Map<string, number>;
  started: number;
  committed: number;
}

/** Commits the phase's events and waits for their receipts. */
async function runPhase(
  url: string,
  receivers: Receiver[],
  name: Phase['name'],
  rate: number | null,
  seconds = 0,
): Promise<Phase> {
  const committedAt = new Map<string, number>();
  say(
    `${name}: ${rate === null ? `${settings.events} events` : `${rate} events/s for ${seconds} s`}`,
  );
  const phaseStarted = now();
  await withClient(url, (client) =>
    rate === null
      ? commitBurst(client, committedAt)
      : commitAtRate(client, committedAt, rate, seconds),
  );
  const committed = now();
  await awaitReceipts([...committedAt.keys()], receivers, (rate === null ? 30 : 5) * 60_000);
  return { name, rate, committedAt, started: phaseStarted, committed };
}

async function runBackend(backend: 'postgres' | 'redis'): Promise<BackendResult> {
  const name = `bench_webhooks_${randomBytes(4).toString('hex')}`;
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const prefix = `bench:${name}:`;
  // The configuration first: a setting it refuses leaves nothing made behind.
  const config = loadConfig({
    NODE_ENV: 'production',
    DATABASE_URL: url.href,
    JWT_SECRET: randomBytes(32).toString('hex'),
    PUBLIC_URL: 'https://bench.example.test',
    LOG_LEVEL: 'warn',
    JOB_CONCURRENCY: settings.concurrency,
    ...(settings.relayInterval ? { EVENTS_RELAY_INTERVAL: settings.relayInterval } : {}),
    ...(settings.endpointConcurrency
      ? { WEBHOOK_ENDPOINT_CONCURRENCY: settings.endpointConcurrency }
      : {}),
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    ...(backend === 'redis' ? { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix } : {}),
  });
  await withClient(serverUrl, (client) => client.query(`create database "${name}"`));
  const receivers = await Promise.all(Array.from({ length: settings.endpoints }, startReceiver));
  let database: Database | undefined;
  try {
    database = await createDatabase(config);
    await database.migrate();
    for (const receiver of receivers) {
      await database.db.execute(sql`
        insert into webhook_endpoints (url, event_types, secret, created_at)
        values (${receiver.url}, array['post.published'], ${createWebhookSecret()},
                now() - interval '1 minute')`);
    }
    const worker = await buildWorker(config, { database });
    await worker.ready();
    const phases: Phase[] = [];
    try {
      const burst = await runPhase(url.href, receivers, 'burst', null);
      phases.push(burst);
      const burstSummary = await summarize(burst, url.href, receivers);
      say(`burst: ${burstSummary.deliveriesPerSecond.toFixed(0)} deliveries/s`);
      if (settings.trickleSeconds > 0) {
        phases.push(
          await runPhase(
            url.href,
            receivers,
            'trickle',
            settings.trickleRate,
            settings.trickleSeconds,
          ),
        );
      }
      const rate =
        settings.rate ??
        Math.max(
          1,
          Math.round((settings.load * burstSummary.deliveriesPerSecond) / settings.endpoints),
        );
      if (settings.steadySeconds > 0) {
        phases.push(await runPhase(url.href, receivers, 'steady', rate, settings.steadySeconds));
      }
    } finally {
      await worker.close();
    }
    // Counted once every phase is over: a late duplicate of the burst's still counts.
    const results: PhaseResult[] = [];
    for (const phase of phases) results.push(await summarize(phase, url.href, receivers));
    return { backend, results };
  } finally {
    await database?.close();
    for (const receiver of receivers) receiver.server.close();
    await withClient(serverUrl, (client) =>
      client.query(`drop database if exists "${name}" with (force)`),
    );
    if (backend === 'redis') await deleteRedisKeys(redisUrl, prefix);
  }
}

async function summarize(phase: Phase, url: string, receivers: Receiver[]): Promise<PhaseResult> {
  const ids = [...phase.committedAt.keys()];
  return summarizePhase({
    name: phase.name,
    rate: phase.rate,
    events: ids.length,
    endpoints: receivers.length,
    started: phase.started,
    committed: phase.committed,
    deliveries: await deliveriesOf(url, phase.committedAt, receivers),
    ...exactlyOnce(ids, receivers),
  });
}

const backends =
  options.backend === 'both' ? (['postgres', 'redis'] as const) : [options.backend as 'postgres'];
const results: BackendResult[] = [];
for (const backend of backends) {
  say(`backend ${backend}`);
  results.push(await runBackend(backend));
}
const markdown = [
  `${settings.events} events × ${settings.endpoints} endpoints, JOB_CONCURRENCY ${settings.concurrency}, WEBHOOK_ENDPOINT_CONCURRENCY ${settings.endpointConcurrency ?? 'default (4)'}, EVENTS_RELAY_INTERVAL ${settings.relayInterval ?? 'default (5s)'}, burst commits of ${settings.batch}`,
  '',
  '### Burst (throughput)',
  '',
  burstTable(results),
  '',
  `### Latency at a fixed rate (steady: ${settings.rate === undefined ? `${settings.load}× the burst's throughput` : `${settings.rate} events/s`}, ${settings.steadySeconds} s; ${settings.trickleSeconds > 0 ? `the reference: the trickle, ${settings.trickleRate} events/s for ${settings.trickleSeconds} s` : 'no trickle'})`,
  '',
  steadyTable(results),
  '',
  "### Where the time goes (p50 / p99 of each stage; relayed → receipt: the latency but for the relay's wait; the last column: the mean of each stage over the slowest 1 % of deliveries)",
  '',
  stageTable(results),
].join('\n');
console.log(`\n${markdown}`);
writeResults(
  resultsDir,
  { kind: 'webhooks', startedAt: started, quick },
  { settings, results },
  markdown,
);
const clean = results.every((r) =>
  r.results.every((phase) => phase.duplicates === 0 && phase.missing === 0),
);
process.exit(clean ? 0 : 1);
