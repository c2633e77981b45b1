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
import fp from 'fastify-plugin';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../config/index.js';
import type { PoolStats } from '../db/client.js';
import { AppError, UnauthorizedError } from '../http/errors.js';
import {
  registerOutboxBacklog,
  registerPoolGauges,
  registerRequestMetrics,
} from './metrics-collectors.js';
import { registerJobMetrics, type JobDepth, type WebhookOutcome } from './metrics-jobs.js';
import type { JobRun } from '../jobs/queue.js';
import type { LiveStats } from '../lib/live.js';
import type { CacheMetricsRecorder } from '../lib/response-cache.js';
import { registerCacheMetrics } from './metrics-cache.js';
import { registerLiveMetrics, type LiveMetricsRecorder } from './metrics-live.js';

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

/** What the metrics read at scrape time. */
export interface MetricsSources {
  /** Undefined when the database has no pool (the in-memory embedded database). */
  pool?: (() => PoolStats | undefined) | undefined;
  /** Emails due and not sent yet: one quick query (an index covers it). */
  outboxDue?: (() => Promise<number>) | undefined;
  /** The job queue's counts by state, where this process uses the queue. */
  jobDepth?: JobDepth | undefined;
  /** The WebSocket hub's counts, where this process serves /api/live. */
  live?: (() => LiveStats) | undefined;
}

export interface MetricsOptions {
  /** METRICS_TOKEN, METRICS_PORT (0 picks a free port) and METRICS_HOST. */
  settings: Config['metrics'];
  /** The operations with a rate limit of their own: their refusals count from zero. */
  rateLimitedOperations: readonly string[];
  sources: MetricsSources;
}

export interface Metrics extends LiveMetricsRecorder, CacheMetricsRecorder {
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
  /** A job run by this process's workers (src/jobs). */
  jobRun(run: JobRun): void;
  /** A webhook attempt made by this process, with its outcome and duration. */
  webhookAttempt(outcome: WebhookOutcome, seconds: number): void;
  /** A webhook received (2xx), so long after its event was committed. */
  webhookDelivered(secondsSinceEvent: number): void;
  /** The exposition text (Prometheus text format 0.0.4). */
  scrape(): Promise<string>;
  /** Starts the METRICS_PORT listener, if configured: server.ts calls it after the API's. */
  listen(): Promise<AddressInfo | undefined>;
  /** The security handler of getMetrics (the `metricsToken` scheme). */
  authenticate(request: FastifyRequest): Promise<void>;
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The label of requests no route matched (404, 405): never their URL, whose values are endless. */
export const UNMATCHED = '(unmatched)';
/** The label of routes that are not operations (the reference pages, x-excluded-routes). */
export const NOT_AN_OPERATION = '(other)';

const notFound = () => new AppError(404, 'NOT_FOUND', 'Not found', 'No route for GET /metrics.');

/** Comparing digests: constant time whatever the lengths of the two tokens. */
const digest = (text: string) => createHash('sha256').update(text).digest();

const noMetrics: Metrics = {
  enabled: false,
  rateLimitRejected: () => undefined,
  rateLimitStoreError: () => undefined,
  emailsDead: () => undefined,
  jobRun: () => undefined,
  webhookAttempt: () => undefined,
  webhookDelivered: () => undefined,
  liveSent: () => undefined,
  liveFanOut: () => undefined,
  liveDropped: () => undefined,
  cacheLookup: () => undefined,
  cacheFill: () => undefined,
  cacheInvalidation: () => undefined,
  cacheError: () => undefined,
  scrape: () => Promise.reject(notFound()),
  listen: () => Promise.resolve(undefined),
  authenticate: () => Promise.reject(notFound()),
};

/**
 * Decorates the app with `metrics` and, when enabled, adds the hooks that measure every
 * request. At the root, before any route: each route gets its series when it is added.
 */
export const metrics = fp<MetricsOptions>(
  async (app, options) => {
    const { settings } = options;
    if (settings.port === undefined && settings.token === undefined) {
      app.decorate('metrics', noMetrics);
      return;
    }
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    measureRequests(app, registry);
    const counters = registerCounters(registry, options.rateLimitedOperations);
    registerPoolGauges(registry, () => options.sources.pool?.());
    registerOutboxBacklog(registry, () => options.sources.outboxDue);
    const jobs = registerJobMetrics(registry, () => options.sources.jobDepth);
    const live = registerLiveMetrics(registry, () => options.sources.live);
    const cache = registerCacheMetrics(registry);

    const scrape = () => registry.metrics();
    const expected = settings.token === undefined ? undefined : digest(settings.token);
    const listener = metricsListener(app, settings, scrape);
    app.decorate('metrics', {
      enabled: true,
      ...counters,
      ...jobs,
      ...live,
      ...cache,
      scrape,
      listen: listener.listen,
      async authenticate(request) {
        if (expected === undefined) throw notFound();
        const header = request.headers.authorization;
        const given = typeof header === 'string' && /^Bearer /i.test(header) ? header.slice(7) : '';
        if (!timingSafeEqual(digest(given), expected)) {
          throw new UnauthorizedError('A valid metrics token is required.');
        }
      },
    } satisfies Metrics);
    // At the end, not at preClose: the metrics stay readable while the app drains its requests.
    app.addHook('onClose', listener.close);
  },
  { name: 'metrics' },
);

/**
 * Each route gets an onResponse hook of its own that knows its operation: nothing is
 * looked up per request. Requests no route matched go through the 404 handler, which only
 * the global hook sees.
 */
function measureRequests(app: FastifyInstance, registry: Registry): void {
  const requests = registerRequestMetrics(registry);
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
}

/** The counters other parts of the app count on. */
function registerCounters(
  registry: Registry,
  rateLimitedOperations: readonly string[],
): Pick<Metrics, 'rateLimitRejected' | 'rateLimitStoreError' | 'emailsDead'> {
  const rejections = new Counter({
    name: 'http_rate_limit_rejections_total',
    help: 'Requests refused by a rate limit (429), by operation (operationId).',
    labelNames: ['operation'] as const,
    registers: [registry],
  });
  // Zero from the start, so that rate() sees the first refusal.
  for (const operation of rateLimitedOperations) rejections.labels(operation).inc(0);
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
  return {
    rateLimitRejected: (operation) => rejections.labels(operation).inc(),
    rateLimitStoreError: () => storeErrors.inc(),
    emailsDead: (reason, count) => deadEmails.labels(reason).inc(count),
  };
}

/** The METRICS_PORT listener's start (server.ts, after the API's) and end (the app's). */
function metricsListener(
  app: FastifyInstance,
  settings: Config['metrics'],
  scrape: () => Promise<string>,
) {
  let server: Server | undefined;
  return {
    listen: async (): Promise<AddressInfo | undefined> => {
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
    close: async (): Promise<void> => {
      const listening = server;
      if (!listening?.listening) return;
      await new Promise<void>((resolve) => {
        listening.close(() => resolve());
        listening.closeAllConnections();
      });
    },
  };
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
