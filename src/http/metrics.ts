import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
  onResponseHookHandler,
} from 'fastify';
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { PoolStats } from '../db/client.js';
import { withTimeout } from '../lib/timeout.js';
import { AppError, UnauthorizedError } from './errors.js';

/**
 * The server's metrics in the Prometheus text format (prom-client, on a registry of the
 * app's own): requests by operation and status, their latency, the database pool, the
 * email outbox's backlog and dead emails, rate-limit refusals and the process.
 *
 * They are served where the configuration says: on a port of their own (METRICS_PORT, a
 * bare node:http listener outside the API and its spec), and/or on the API's port as the
 * operation getMetrics, to a scraper that sends METRICS_TOKEN. With neither, nothing is
 * measured: no hook runs, and getMetrics answers 404 like a path the server does not have.
 */

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics;
  }
}

export interface MetricsSettings {
  /** METRICS_TOKEN: getMetrics on the API's port answers a scraper that sends it. */
  readonly token: string | undefined;
  /** METRICS_PORT: a listener of their own for the metrics; 0 picks a free port. */
  readonly port: number | undefined;
  /** METRICS_HOST: the address that listener binds. */
  readonly host: string;
}

/** What the metrics read at scrape time; given once the database is open. */
export interface MetricsSources {
  /** Undefined when the database has no pool (the in-memory embedded database). */
  pool?: (() => PoolStats | undefined) | undefined;
  /** Emails due and not sent yet: one quick query (an index covers it). */
  outboxDue?: (() => Promise<number>) | undefined;
}

export interface Metrics {
  /** Whether anything is measured (METRICS_PORT or METRICS_TOKEN is set). */
  readonly enabled: boolean;
  /** A request refused by a rate limit, by the operationId it asked for. */
  rateLimitRejected(operation: string): void;
  /** The rate limits' store failed (a request then passes unlimited or is refused). */
  rateLimitStoreError(): void;
  /**
   * Emails given up on: failed for the last allowed time ('attempts'), or whose link
   * expired before they could be sent ('expired').
   */
  emailsDead(reason: 'attempts' | 'expired', count: number): void;
  /** Where the values read at scrape time come from. */
  observe(sources: MetricsSources): void;
  /** The exposition text (Prometheus text format 0.0.4). */
  scrape(): Promise<string>;
  /** Starts the METRICS_PORT listener, if configured: server.ts calls it after the API's. */
  listen(): Promise<AddressInfo | undefined>;
  /** The security handler of getMetrics (the `metricsToken` scheme). */
  authenticate(request: FastifyRequest): Promise<void>;
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Upper bounds of the latency buckets, in seconds: 5 ms to 10 s. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** The label of requests no route matched (404, 405): never their URL, whose values are endless. */
export const UNMATCHED = '(unmatched)';
/** The label of routes that are not operations (the reference pages, x-excluded-routes). */
export const NOT_AN_OPERATION = '(other)';
/** The outbox backlog is read at most this often, and a read waits at most this long. */
const OUTBOX_CACHE_MS = 5_000;
const OUTBOX_TIMEOUT_MS = 1_000;

const notFound = () => new AppError(404, 'NOT_FOUND', 'Not found', 'No route for GET /metrics.');

/** The operationId of the route a request matched (for the rate limiter's refusals). */
export function operationIdOf(request: FastifyRequest): string {
  if (request.is404) return UNMATCHED;
  const operationId = (request.routeOptions.schema as { operationId?: unknown } | undefined)
    ?.operationId;
  return typeof operationId === 'string' ? operationId : NOT_AN_OPERATION;
}

/** Comparing digests: constant time whatever the lengths of the two tokens. */
const digest = (text: string) => createHash('sha256').update(text).digest();

function noMetrics(): Metrics {
  return {
    enabled: false,
    rateLimitRejected: () => undefined,
    rateLimitStoreError: () => undefined,
    emailsDead: () => undefined,
    observe: () => undefined,
    scrape: () => Promise.reject(notFound()),
    listen: () => Promise.resolve(undefined),
    authenticate: () => Promise.reject(notFound()),
  };
}

/**
 * Decorates the app with `metrics` and, when enabled, adds the hooks that measure every
 * request. Call it before any route is registered: each route gets its series when added.
 */
export function registerMetrics(
  app: FastifyInstance,
  settings: MetricsSettings,
  options: { rateLimitedOperations: readonly string[] },
): Metrics {
  if (settings.port === undefined && settings.token === undefined) {
    const metrics = noMetrics();
    app.decorate('metrics', metrics);
    return metrics;
  }
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const requests = registerRequestMetrics(registry);
  const rejections = new Counter({
    name: 'http_rate_limit_rejections_total',
    help: 'Requests refused by a rate limit (429), by operation (operationId).',
    labelNames: ['operation'] as const,
    registers: [registry],
  });
  // Zero from the start, so that rate() sees the first refusal.
  for (const operation of options.rateLimitedOperations) rejections.labels(operation).inc(0);
  const storeErrors = new Counter({
    name: 'rate_limit_store_errors_total',
    help: 'Failures of the rate limits store.',
    registers: [registry],
  });
  const deadEmails = new Counter({
    name: 'email_outbox_dead_total',
    help: 'Emails given up on, by reason: failed EMAIL_MAX_ATTEMPTS times (attempts), or their link expired before they could be sent (expired).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of ['attempts', 'expired']) deadEmails.labels(reason).inc(0);

  // Each route gets an onResponse hook of its own that knows its operation: nothing is
  // looked up per request. Requests no route matched go through the 404 handler, which
  // only the global hook sees.
  app.addHook('onRoute', (route) => {
    const operationId = (route.schema as { operationId?: unknown } | undefined)?.operationId;
    const stats = requests.of(typeof operationId === 'string' ? operationId : NOT_AN_OPERATION);
    const hook: onResponseHookHandler = (_request, reply, done) => {
      stats.record(reply.statusCode, reply.elapsedTime);
      done();
    };
    const existing = route.onResponse;
    route.onResponse = existing === undefined ? [hook] : [...[existing].flat(), hook];
  });
  const unmatched = requests.of(UNMATCHED);
  app.addHook(
    'onResponse',
    (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
      if (request.is404) unmatched.record(reply.statusCode, reply.elapsedTime);
      done();
    },
  );

  let sources: MetricsSources = {};
  registerPoolGauges(registry, () => sources.pool?.());
  registerOutboxBacklog(registry, () => sources.outboxDue);

  const scrape = () => registry.metrics();
  const expected = settings.token === undefined ? undefined : digest(settings.token);
  let server: Server | undefined;

  const metrics: Metrics = {
    enabled: true,
    rateLimitRejected: (operation) => rejections.labels(operation).inc(),
    rateLimitStoreError: () => storeErrors.inc(),
    emailsDead: (reason, count) => deadEmails.labels(reason).inc(count),
    observe: (given) => {
      sources = given;
    },
    scrape,
    async listen() {
      if (settings.port === undefined) return undefined;
      if (server?.listening) return server.address() as AddressInfo;
      server = createMetricsServer(scrape, (error) =>
        app.log.error({ err: error }, 'metrics: scrape failed'),
      );
      const listening = server;
      await new Promise<void>((resolve, reject) => {
        listening.once('error', reject);
        listening.listen(settings.port, settings.host, () => {
          listening.off('error', reject);
          resolve();
        });
      });
      const address = listening.address() as AddressInfo;
      app.log.info({ address: address.address, port: address.port }, 'metrics listening');
      return address;
    },
    async authenticate(request) {
      if (expected === undefined) throw notFound();
      const header = request.headers.authorization;
      const given = typeof header === 'string' && /^Bearer /i.test(header) ? header.slice(7) : '';
      if (!timingSafeEqual(digest(given), expected)) {
        throw new UnauthorizedError('A valid metrics token is required.');
      }
    },
  };
  app.decorate('metrics', metrics);
  // At the end, not at preClose: the metrics stay readable while the app drains its requests.
  app.addHook('onClose', async () => {
    const listening = server;
    if (!listening?.listening) return;
    await new Promise<void>((resolve) => {
      listening.close(() => resolve());
      listening.closeAllConnections();
    });
  });
  return metrics;
}

/**
 * One operation's requests, as plain numbers: per request, an increment by status and one
 * in the latency bucket it falls in (prom-client's own counter and histogram hash their
 * labels on every call, about ten times the work). Turned into samples at scrape time.
 */
class OperationStats {
  /** By status code (Fastify's are 100 to 599). */
  readonly byStatus = new Float64Array(600);
  /** Requests per latency bucket, not cumulative; the last one is +Inf. */
  readonly buckets = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  constructor(readonly operation: string) {}

  /** A reply sent, after `elapsedMs` (Fastify's reply.elapsedTime). */
  record(status: number, elapsedMs: number): void {
    this.byStatus[status] = (this.byStatus[status] ?? 0) + 1;
    const seconds = elapsedMs / 1000;
    let bucket = 0;
    while (bucket < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[bucket]!) bucket += 1;
    this.buckets[bucket] = (this.buckets[bucket] ?? 0) + 1;
    this.sum += seconds;
    this.count += 1;
  }
}

type Sample = { labels: Record<string, string | number>; value: number; metricName?: string };

/**
 * http_requests_total and http_request_duration_seconds, from the OperationStats of every
 * operation (one per label: the routes that are not operations share theirs).
 */
function registerRequestMetrics(registry: Registry) {
  const stats = new Map<string, OperationStats>();
  const metric = (
    name: string,
    help: string,
    type: 'counter' | 'histogram',
    values: () => Sample[],
  ) =>
    registry.registerMetric({
      name,
      help,
      type,
      get: async () => ({ name, help, type, values: values(), aggregator: 'sum' }),
    } as unknown as Metric);

  metric(
    'http_requests_total',
    'HTTP requests answered, by operation (operationId) and status code.',
    'counter',
    () => {
      const values: Sample[] = [];
      for (const { operation, byStatus } of stats.values()) {
        byStatus.forEach((value, status) => {
          if (value > 0) values.push({ labels: { operation, status }, value });
        });
      }
      return values;
    },
  );
  metric(
    'http_request_duration_seconds',
    'Time from receiving a request to sending its last byte, by operation (operationId).',
    'histogram',
    () => {
      const values: Sample[] = [];
      for (const { operation, buckets, sum, count } of stats.values()) {
        if (count === 0) continue;
        let cumulative = 0;
        buckets.forEach((value, bucket) => {
          cumulative += value;
          const le = LATENCY_BUCKETS[bucket] ?? '+Inf';
          values.push({
            metricName: 'http_request_duration_seconds_bucket',
            labels: { le, operation },
            value: cumulative,
          });
        });
        values.push({
          metricName: 'http_request_duration_seconds_sum',
          labels: { operation },
          value: sum,
        });
        values.push({
          metricName: 'http_request_duration_seconds_count',
          labels: { operation },
          value: count,
        });
      }
      return values;
    },
  );
  return {
    /** The stats of an operation (or of a label that stands for several routes). */
    of(operation: string): OperationStats {
      let found = stats.get(operation);
      if (!found) stats.set(operation, (found = new OperationStats(operation)));
      return found;
    },
  };
}

/** in use, idle and waiting, read from the pool at scrape time. */
function registerPoolGauges(registry: Registry, read: () => PoolStats | undefined): void {
  // Each gauge sets its value from one reading of the pool; without a pool (the in-memory
  // embedded database) they have no sample at all rather than a misleading 0.
  const gauge = (name: string, help: string, value: (stats: PoolStats) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const stats = read();
        if (stats) this.set(value(stats));
        else this.remove();
      },
    });
  gauge(
    'db_pool_connections_in_use',
    'Database connections lent to a query or a transaction.',
    (s) => s.total - s.idle,
  );
  gauge('db_pool_connections_idle', 'Database connections open and unused.', (s) => s.idle);
  gauge(
    'db_pool_requests_waiting',
    'Queries waiting for a database connection (the pool is at its maximum).',
    (s) => s.waiting,
  );
  gauge(
    'db_pool_connections_max',
    'The most connections the pool opens (DB_POOL_MAX).',
    (s) => s.max,
  );
}

/**
 * The outbox backlog, read at scrape time: at most one read every OUTBOX_CACHE_MS however
 * often it is scraped, one at a time, and a scrape waits for it at most OUTBOX_TIMEOUT_MS.
 * While the database does not answer, the gauge has no sample (absent, not a stale or a
 * made-up number) and the error counter says why.
 */
function registerOutboxBacklog(
  registry: Registry,
  source: () => (() => Promise<number>) | undefined,
): void {
  let last: { at: number; value: number | undefined } | undefined;
  // One read at a time: a read that outlives its scrape's wait is not started again (nor
  // counted twice) by the next scrape, which waits for the same one.
  let reading: { outcome: Promise<number | undefined>; timedOut: boolean } | undefined;
  // The scrape's update of the gauge, which the error counter waits for: both are read by
  // one scrape, and the counter must include that scrape's failure.
  let updating: Promise<void> = Promise.resolve();

  const read = (count: () => Promise<number>) => {
    if (reading) return reading;
    const current = {
      timedOut: false,
      outcome: count().then(
        (value) => value,
        () => {
          if (!current.timedOut) errors.inc();
          return undefined;
        },
      ),
    };
    void current.outcome.then((value) => {
      last = { at: Date.now(), value };
      reading = undefined;
    });
    reading = current;
    return current;
  };

  const update = async (gauge: Gauge) => {
    const count = source();
    let value: number | undefined;
    if (!count) value = undefined;
    else if (last && Date.now() - last.at < OUTBOX_CACHE_MS) value = last.value;
    else {
      const current = read(count);
      // current.outcome never rejects (a failed read is undefined): a rejection is the wait.
      value = await withTimeout(current.outcome, OUTBOX_TIMEOUT_MS, 'outbox read').catch(() => {
        // Counted once, and remembered like a failure: the next scrapes answer at once.
        if (!current.timedOut) errors.inc();
        current.timedOut = true;
        last = { at: Date.now(), value: undefined };
        return undefined;
      });
    }
    if (value === undefined) gauge.remove();
    else gauge.set(value);
  };

  // Registered first: a scrape reads the metrics in this order, so the gauge's update has
  // begun when the counter waits for it.
  new Gauge({
    name: 'email_outbox_due',
    help: 'Emails due to be sent and not sent yet (read at most every 5 seconds); no sample while the database does not answer.',
    registers: [registry],
    async collect() {
      updating = update(this);
      await updating;
    },
  });
  const errors = new Counter({
    name: 'email_outbox_due_read_errors_total',
    help: 'Reads of the email outbox backlog that failed or timed out.',
    registers: [registry],
    async collect() {
      await updating;
    },
  });
}

/** The METRICS_PORT listener: GET /metrics and nothing else. */
function createMetricsServer(
  scrape: () => Promise<string>,
  onError: (error: unknown) => void,
): Server {
  // A scraper asks and waits for one answer: a client slower than that is cut off.
  return createServer({ headersTimeout: 5_000, requestTimeout: 10_000 }, (request, response) => {
    const path = (request.url ?? '').split('?', 1)[0];
    if (path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response
        .writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' })
        .end('Method not allowed\n');
      return;
    }
    scrape().then(
      (text) => {
        response.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE });
        response.end(request.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        onError(error);
        response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('Error\n');
      },
    );
  });
}
