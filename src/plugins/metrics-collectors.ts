import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PoolStats } from '../db/client.js';
import { withTimeout } from '../lib/timeout.js';

/**
 * The metrics of requests, of the database pool and of the email outbox (the last two read
 * at scrape time), each a prom-client metric of its type on the app's registry.
 */

/** Upper bounds of the latency buckets, in seconds: 5 ms to 10 s. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** The outbox backlog is read at most this often, and a read waits at most this long. */
const OUTBOX_CACHE_MS = 5_000;
const OUTBOX_TIMEOUT_MS = 1_000;

/** What each request of an operation is recorded with. */
export interface OperationStats {
  /** A reply sent, after `elapsedMs` (Fastify's reply.elapsedTime). */
  record(status: number, elapsedMs: number): void;
}

/**
 * http_requests_total and http_request_duration_seconds, by operation (one label for each
 * operation; the routes that are not operations share one). The replies by status are
 * counted as plain numbers, an increment per request, and written into the counter at
 * scrape time: prom-client's own counter hashes its labels on every call (about 0.5 µs a
 * request, measured, against a few ns).
 */
export function registerRequestMetrics(registry: Registry) {
  /** Replies by status code (Fastify's are 100 to 599), by operation. */
  const counts = new Map<string, Float64Array>();
  new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by operation (operationId) and status code.',
    labelNames: ['operation', 'status'] as const,
    registers: [registry],
    // The counts so far, written in at scrape time (prom-client's collect()).
    collect() {
      this.reset();
      for (const [operation, byStatus] of counts) {
        byStatus.forEach((value, status) => {
          if (value > 0) this.inc({ operation, status }, value);
        });
      }
    },
  });
  const durations = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from receiving a request to sending its last byte, by operation (operationId).',
    labelNames: ['operation'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const stats = new Map<string, OperationStats>();
  return {
    /** The stats of an operation (or of a label that stands for several routes). */
    of(operation: string): OperationStats {
      let found = stats.get(operation);
      if (found) return found;
      const byStatus = new Float64Array(600);
      counts.set(operation, byStatus);
      // The labelled child, once: each observation still costs prom-client's label checks
      // (about 0.6 µs a request, measured).
      const histogram = durations.labels(operation);
      found = {
        record(status, elapsedMs) {
          byStatus[status] = (byStatus[status] ?? 0) + 1;
          histogram.observe(elapsedMs / 1000);
        },
      };
      stats.set(operation, found);
      return found;
    },
  };
}

/** in use, idle and waiting, read from the pool at scrape time. */
export function registerPoolGauges(registry: Registry, read: () => PoolStats | undefined): void {
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
export function registerOutboxBacklog(
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
