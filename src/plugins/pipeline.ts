import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/index.js';
import type { SharedRedis } from '../lib/redis.js';
import type { ResponseCache } from '../lib/response-cache.js';
import { accountPages } from '../http/account-pages.js';
import { allowedMethodsOf } from '../http/allowed-methods.js';
import { contract, operationsOf, type OpenApiDocument } from '../http/contract.js';
import { problems } from '../http/error-handler.js';
import type { Handlers } from '../http/handler-types.js';
import { headRoutes } from '../http/head-routes.js';
import type { LiveDocsDocument } from '../http/live-docs.js';
import type { LiveDocument } from '../http/live-messages.js';
import { requestBodies } from '../http/json-body.js';
import { authentication, type SecurityHandlers } from '../http/security.js';
import { apiOperationLookup } from './api-operations.js';
import { background, type BackgroundTask } from './background.js';
import { cors } from './cors.js';
import { docs } from './docs.js';
import { live } from './live.js';
import { gracefulClose } from './graceful-close.js';
import { pathParameterLimit } from './limits.js';
import { loadShedding } from './load-shedding.js';
import { UNMATCHED, metrics, type MetricsSources } from './metrics.js';
import { operationLimits, rateLimits } from './rate-limits.js';
import { requestIds } from './request-id.js';
import { requestLog } from './request-log.js';
import { responseCache } from './response-cache.js';
import { securityHeaders } from './security-headers.js';

/** What the app's plugins are given besides the configuration. */
export interface PipelineParts {
  spec: OpenApiDocument;
  /** The document /openapi.json publishes and /docs renders (src/spec.ts). */
  published: OpenApiDocument;
  handlers: Handlers;
  securityHandlers: SecurityHandlers;
  background: readonly BackgroundTask[];
  /** See AppDeps.migrated: the background work starts once it resolves. */
  migrated: Promise<unknown> | undefined;
  metricsSources: MetricsSources;
  /** REDIS_URL's connection: the rate limits count there, under REDIS_KEY_PREFIX. */
  redis: SharedRedis | null;
  /** The response cache (REDIS_URL and CACHE); null: nothing is cached. */
  cache: ResponseCache | null;
  /** GET /api/live's sockets and their message size limit. */
  live: Parameters<typeof live>[1];
  /** GET /api/live's contract (generated/asyncapi.json), which /docs/live renders. */
  liveDocument: LiveDocument;
}

/**
 * Registers every plugin of the app, infrastructure and contract, in one list. Hooks of a
 * kind run in the order they were added, and a route is given its hooks by the onRoute
 * hooks added before it, each after the previous ones': the order is part of what the app
 * does, and each position says why it is where it is.
 */
export async function registerPipeline(
  app: FastifyInstance,
  config: Config,
  parts: PipelineParts,
): Promise<void> {
  const { spec, redis } = parts;
  const apiOperationOf = apiOperationLookup(spec);
  const allowedMethods = allowedMethodsOf(operationsOf(spec));
  const inOrder = [
    // First of the preClose hooks: /ready turns 503 and listening stops at once, before
    // the background work stops and the requests in flight drain.
    () => app.register(gracefulClose),
    // Anywhere: one onSend hook for every response.
    () => app.register(requestIds),
    // Before any route, as every plugin that adds route hooks: a route only gets those of
    // the onRoute hooks added before it. The HEAD twins' 304 fix; each route's series.
    () => app.register(headRoutes),
    () =>
      app.register(metrics, {
        settings: config.metrics,
        rateLimitedOperations: Object.keys(config.rateLimits),
        sources: parts.metricsSources,
      }),
    // Before the not-found hook (problems): the answers to unmatched requests get the
    // security and CORS headers too, and a CORS preflight (it matches no route, the spec
    // has no OPTIONS operation) is answered before that hook would refuse it.
    () => app.register(securityHeaders, { hstsMaxAgeSeconds: config.hstsMaxAgeSeconds }),
    () => app.register(cors, { origins: config.corsOrigins, allowedMethods, spec }),
    () => app.register(problems, { allowedMethods }),
    // Anywhere before the routes: the request log, the bodies' parsers and checks.
    () => app.register(requestLog),
    () => app.register(requestBodies),
    // Before the rate limits: an operation's own limit then counts after this check, while
    // the global limit puts its hook first on every operation whatever the order.
    () => app.register(pathParameterLimit),
    // Before the routes: the security handlers verify tokens with it.
    () => app.register(authentication, { jwt: config.jwt }),
    () =>
      app.register(rateLimits, {
        global: config.globalRateLimit,
        redis: redis && config.redis && { client: redis.client, keyPrefix: config.redis.keyPrefix },
        apiOperationOf,
        onRejected: (_limit, operationId) =>
          app.metrics.rateLimitRejected(operationId ?? UNMATCHED),
        onStoreError: () => app.metrics.rateLimitStoreError(),
      }),
    // After the rate limits: a shed request is counted like any other, and its 503 carries
    // the X-RateLimit-* headers as every answer of an operation does.
    () => app.register(loadShedding, { limits: config.overload, apiOperationOf }),
    // @fastify/websocket at the root, before the routes (it closes upgrades to routes that
    // are not WebSockets) and after the plugins that hook routes (GET /api/live gets a
    // metrics series and the rate limits too); its preClose hook, after graceful close's,
    // closes the sockets with 1001.
    () => app.register(live, parts.live),
    // After graceful close: its preClose hook, which stops the work (the batch of emails in
    // hand included), runs once closing has begun; the database closes later, at onClose.
    () => app.register(background, { tasks: parts.background, migrated: parts.migrated }),
    // Before the routes it hooks: its lookup is each cached operation's last preHandler,
    // after validation, authentication, the limits and the shedding.
    ...(parts.cache
      ? [
          () =>
            app.register(responseCache, {
              cache: parts.cache!,
              apiOperationOf,
              viewCountLagMs: config.cache.viewCountLagMs,
              notFoundTtlMs: config.cache.notFoundTtlMs,
            }),
        ]
      : []),
    // The operations' routes, after every plugin that hooks them. Inside, response
    // validation comes before the routes, or it would not see them.
    () =>
      app.register(contract, {
        spec,
        handlers: parts.handlers,
        securityHandlers: parts.securityHandlers,
        routeConfig: operationLimits(config.rateLimits),
        responseValidation: config.responseValidation,
      }),
    // Pages for people (x-excluded-routes), after the plugins that hook routes, like the
    // operations: their routes get a metrics series and the HEAD twins' fix too.
    () =>
      app.register(docs, {
        document: parts.published,
        publicApiUrl: config.publicApiUrl,
        liveDocument: parts.liveDocument as unknown as LiveDocsDocument,
      }),
    // Where the development log's links lead; in production PUBLIC_URL is the application's.
    ...(config.env === 'production' ? [] : [() => app.register(accountPages)]),
  ];
  for (const register of inOrder) await register();
}
