import { randomUUID } from 'node:crypto';
import fastifyJwt from '@fastify/jwt';
import responseValidation from '@fastify/response-validation';
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyServerOptions,
  type onSendHookHandler,
} from 'fastify';
import type { Config, RateLimitedOperation } from './config.js';
import { createDatabase, type Database } from './db/client.js';
import { deleteEndedRows } from './modules/housekeeping/ended-rows.js';
import { allowedMethodsOf } from './http/allowed-methods.js';
import { registerCors } from './http/cors.js';
import { registerRequestLog } from './http/request-log.js';
import { registerSecurityHeaders, securityHeadersOf } from './http/security-headers.js';
import { createClientErrorHandler, routeHostless } from './http/client-errors.js';
import {
  operationsOf,
  registerContract,
  restrictRoutesToSpec,
  type OpenApiDocument,
} from './http/contract.js';
import { registerAccountPages } from './http/account-pages.js';
import { registerDocs } from './http/docs.js';
import { registerErrorHandling, sendProblem } from './http/error-handler.js';
import type { Handlers } from './http/handler-types.js';
import { registerJsonBodyParser, registerQueryTextCheck } from './http/json-body.js';
import { registerPathParameterLimit } from './http/uri-length.js';
import { registerMetrics } from './http/metrics.js';
import { registerLoadShedding } from './http/load-shedding.js';
import {
  apiOperationLookup,
  registerRateLimits,
  type RateLimitEvents,
} from './http/rate-limits.js';
import { createSecurityHandlers } from './http/security.js';
import { serializersCompiledWhenFirstUsed } from './http/serialization.js';
import { createContractValidation, type ContractValidation } from './http/validation.js';
import { createPasswordHasher } from './lib/passwords.js';
import { every } from './lib/periodic.js';
import { createSharedRedis } from './lib/redis.js';
import { createAccountHandlers } from './modules/account/handlers.js';
import { createAccountRepository } from './modules/account/repository.js';
import { createAccountService } from './modules/account/service.js';
import { createAuthHandlers } from './modules/auth/handlers.js';
import { createLoginFailuresRepository } from './modules/auth/login-failures-repository.js';
import { createLoginLimits } from './modules/auth/login-limits.js';
import { createAuthService, createAuthenticator } from './modules/auth/service.js';
import { createSessionsRepository } from './modules/auth/sessions-repository.js';
import { createSessionsService } from './modules/auth/sessions-service.js';
import { createTokenService } from './modules/auth/tokens.js';
import { createAccountMail } from './modules/email/account-mail.js';
import { createEmailDelivery, type EmailDelivery } from './modules/email/delivery.js';
import { createOutboxRepository } from './modules/email/outbox.js';
import { createLogTransport, createSmtpTransport } from './modules/email/transports.js';
import { createMetaHandlers } from './modules/meta/handlers.js';
import { createPostsHandlers } from './modules/posts/handlers.js';
import { createPostsRepository } from './modules/posts/repository.js';
import { createPostsService } from './modules/posts/service.js';
import { ensureAdminAccount } from './modules/users/admin-account.js';
import { StartupError } from './db/connection-errors.js';
import { checkSearchLanguage } from './db/search.js';
import { createUsersHandlers } from './modules/users/handlers.js';
import { createUsersRepository } from './modules/users/repository.js';
import { createUsersService } from './modules/users/service.js';
import { loadSpec, publishedSpec } from './spec.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The email delivery loop: it polls on its own (EMAIL_POLL_INTERVAL) from `ready` to
     * `close`; `deliverDue()` sends what is due now (tests, with the poll off).
     */
    emailDelivery: EmailDelivery;
    /** Whether the app is shutting down (`close()` was called): /ready answers 503 then. */
    closing: () => boolean;
    /** Listeners for the rate limits' refusals and Redis failures (metrics). */
    rateLimits: RateLimitEvents;
  }
}

export interface AppDeps {
  /** An open database; the caller keeps ownership. Without it, buildApp opens (and closes) one. */
  database?: Database;
  logger?: FastifyServerOptions['logger'];
  /** The bundled spec; generated/openapi.json by default. */
  spec?: OpenApiDocument;
  /**
   * Resolves once the given database's schema is current, when the caller migrates it while
   * the app is built (server.ts does for the embedded database). Start-up work that writes
   * to the database (the ADMIN_EMAIL account) waits for it.
   */
  migrated?: Promise<unknown>;
}

/** Fastify's form of TRUST_PROXY: a hop count becomes "the first N hops" (what proxy-addr does). */
function trustProxyOption(
  trust: Config['trustProxy'],
): false | string[] | ((address: string, hop: number) => boolean) {
  if (typeof trust === 'number') return (_address, hop) => hop < trust;
  return trust === false ? false : [...trust];
}

/**
 * The route `config` that limits an operation per client IP (RATE_LIMIT_*_MAX per
 * RATE_LIMIT_AUTH_WINDOW, each operation on its own counter; in Redis when REDIS_URL is
 * set, else in this process's memory).
 */
export function rateLimitRoute(config: Config, operation: RateLimitedOperation) {
  const { max, windowSeconds } = config.rateLimits[operation];
  return { rateLimit: { max, timeWindow: windowSeconds * 1000 } };
}

const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;

const notModifiedWithoutLength: onSendHookHandler = (_request, reply, payload, done) => {
  if (reply.statusCode === 304) reply.removeHeader('content-length');
  done(null, payload);
};

/**
 * The composition root: builds the database client, the repositories, the services and
 * the handlers, and wires them to the routes of the spec. It never listens (server.ts does).
 */
export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const spec = deps.spec ?? loadSpec();
  const { http } = config;
  const app = Fastify({
    logger: deps.logger ?? false,
    schemaController: serializersCompiledWhenFirstUsed,
    bodyLimit: config.bodyLimitBytes,
    // Fastify's defaults leave a slow client unbounded (no request or connection timeout).
    // Node checks the request and headers timeouts every connectionsCheckingInterval (30 s
    // by default): a quarter of the shorter one keeps the cut-off close to the setting.
    requestTimeout: http.requestTimeoutMs,
    connectionTimeout: http.connectionTimeoutMs,
    keepAliveTimeout: http.keepAliveTimeoutMs,
    http: {
      requestTimeout: http.requestTimeoutMs,
      headersTimeout: http.headersTimeoutMs,
      keepAliveTimeout: http.keepAliveTimeoutMs,
      maxHeaderSize: http.maxHeaderSize,
      // A request without Host is refused by the 404 handler, as a problem (routeHostless).
      requireHostHeader: false,
      connectionsCheckingInterval: Math.max(
        250,
        Math.min(30_000, Math.min(http.requestTimeoutMs, http.headersTimeoutMs) / 4),
      ),
    },
    // A caller's X-Request-Id is kept when it is sane, so logs can be followed across services.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && requestIdPattern.test(given) ? given : randomUUID();
    },
    // One line per request instead of Fastify's two (src/http/request-log.ts).
    logController: new LogController({
      requestIdLogLabel: 'requestId',
      disableRequestLogging: true,
    }),
    // Requests Node.js cannot read (malformed, too slow, headers too large) become problems
    // too, with a request id and the security headers.
    clientErrorHandler: createClientErrorHandler({
      maxHeaderSize: http.maxHeaderSize,
      headers: securityHeadersOf({ hstsMaxAgeSeconds: config.hstsMaxAgeSeconds }),
    }),
    rewriteUrl: routeHostless,
    // Router errors (bad URL encoding) become problems too.
    frameworkErrors: (error, request, reply) => void sendProblem(error, request, reply),
    // A path parameter over 255 characters is refused after routing, as an operation's
    // own 414 (registerPathParameterLimit); the router takes any a request line can hold.
    routerOptions: { maxParamLength: http.maxHeaderSize },
    // HEAD for every GET (RFC 9110 §9.3.2): Fastify adds a twin to each GET route, glue's
    // included, answering with the GET's status and headers and no body. The spec says so
    // once ("HEAD"), not as operations of their own: restrictRoutesToSpec lets these by.
    exposeHeadRoutes: true,
    trustProxy: trustProxyOption(config.trustProxy),
    // Once closing starts, requests still reaching the server (on connections it had
    // already accepted) are answered as usual, /ready with its own 503 problem (Fastify's
    // would be a plain JSON 503 from every route); see the preClose hook below.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  });
  // Graceful shutdown, first of the preClose hooks so that it happens at once: /ready turns
  // 503, the server stops listening (Fastify's own server.close() comes after the other
  // preClose hooks and still waits for the connections in use), and every reply from now
  // on says `Connection: close`. A keep-alive connection that went quiet after its reply
  // would keep the server open until it timed out: such connections are closed as they
  // become idle (never one with a response in progress).
  let closing = false;
  let sweep: NodeJS.Timeout | undefined;
  app.decorate('closing', () => closing);
  app.addHook('preClose', async () => {
    closing = true;
    if (!app.server.listening) return;
    app.server.close();
    sweep = setInterval(() => app.server.closeIdleConnections(), 50);
    sweep.unref();
  });
  app.addHook('onClose', async () => clearInterval(sweep));
  // A callback hook: it runs for every response (an async one would cost a promise each).
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  // Orchestrators probe these every few seconds: their requests are not logged at info
  // (a warning or an error during one still is).
  app.addHook('onRoute', (route) => {
    if (route.url === '/health' || route.url === '/ready') route.logLevel = 'warn';
    // Fastify's HEAD twin says `Content-Length: 0` when there is no body, a 304 included;
    // a 304 must not state a length other than its 200's (RFC 9110 §8.6), and the GET's
    // 304 states none.
    if (route.method === 'HEAD') {
      const hooks = route.onSend;
      route.onSend = [...(hooks === undefined ? [] : [hooks].flat()), notModifiedWithoutLength];
    }
  });
  // Before any route: each gets its series as it is added (METRICS_PORT, METRICS_TOKEN).
  registerMetrics(app, config.metrics, { rateLimitedOperations: Object.keys(config.rateLimits) });

  const validation = createContractValidation();
  app.setValidatorCompiler(validation.validatorCompiler);
  const allowedMethods = allowedMethodsOf(operationsOf(spec));
  // Before the hook that answers unmatched requests: their answers get these headers too.
  await registerSecurityHeaders(app, { hstsMaxAgeSeconds: config.hstsMaxAgeSeconds });
  registerCors(app, { origins: config.corsOrigins, allowedMethods, spec });
  registerErrorHandling(app, allowedMethods);
  registerRequestLog(app);
  registerJsonBodyParser(app);
  registerQueryTextCheck(app);
  registerPathParameterLimit(app);

  try {
    await wire(app, config, deps, spec, validation);
  } catch (error) {
    // Whatever was opened (the database) is closed by the onClose hooks.
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}

async function wire(
  app: FastifyInstance,
  config: Config,
  deps: AppDeps,
  spec: OpenApiDocument,
  validation: ContractValidation,
): Promise<void> {
  let database = deps.database;
  if (!database) {
    const opened = await createDatabase(config, {
      // The error carries the pool's client, connection settings and all: log what happened.
      onPoolError: (error: Error & { code?: unknown }) =>
        app.log.warn({ code: error.code, message: error.message }, 'database connection lost'),
      embedded: {
        label: 'the API server',
        exclusive: true,
        onError: (message) => app.log.error({ message }, 'embedded database'),
      },
    });
    app.addHook('onClose', () => opened.close());
    // The embedded database belongs to this process: bring it up to date on every start.
    if (opened.kind !== 'postgres') await opened.migrate();
    database = opened;
  }

  await app.register(fastifyJwt, {
    secret: config.jwt.secret,
    sign: {
      algorithm: 'HS256',
      iss: config.jwt.issuer,
      aud: config.jwt.audience,
      // @fastify/jwt reads a number as seconds.
      expiresIn: config.jwt.expiresInSeconds,
    },
    verify: {
      algorithms: ['HS256'],
      allowedIss: config.jwt.issuer,
      allowedAud: config.jwt.audience,
      // `sid`: every access token belongs to a session, checked on every request.
      requiredClaims: ['exp', 'iss', 'aud', 'sub', 'sid'],
    },
  });
  app.decorateRequest('principal', null);

  // Per client IP: every API operation together (RATE_LIMIT_MAX), and the operations
  // given a `rateLimit` route config below each on its own counter (guessing passwords and
  // mass sign-ups cost time). With REDIS_URL the counts are shared by every instance.
  const redis = config.redis
    ? await createSharedRedis(config.redis.url, app.log.child({ component: 'redis' }))
    : null;
  if (redis) {
    // Start-up waits a second at most for Redis: without it, the server starts anyway.
    app.addHook('onReady', () => redis.start(1000));
    app.addHook('onClose', () => redis.close());
  }
  const apiOperationOf = apiOperationLookup(spec);
  const rateLimits = await registerRateLimits(app, {
    global: config.globalRateLimit,
    redis: redis && config.redis && { client: redis.client, keyPrefix: config.redis.keyPrefix },
    apiOperationOf,
  });
  app.decorate('rateLimits', rateLimits);
  // Every 429 of an IP limit, under the operation asked for (whichever limit refused it).
  rateLimits.onRejected((_limit, operationId) =>
    app.metrics.rateLimitRejected(operationId ?? '(unmatched)'),
  );
  rateLimits.onStoreError(() => app.metrics.rateLimitStoreError());
  // After the rate limits: a shed request is counted like any other.
  await registerLoadShedding(app, config.overload, apiOperationOf);

  if (config.responseValidation) {
    // Registered before the routes, or it does not see them. A handler that answers
    // outside the contract (a body that does not match, or a status the operation does
    // not declare) fails loudly (500) instead of being quietly trimmed. The Ajv instance is
    // the one that validates request bodies: the same formats, nothing coerced or removed.
    await app.register(responseValidation, {
      ajv: validation.exactAjv,
      responseStatusCodeValidation: true,
    });
  }

  const checkRoutes = restrictRoutesToSpec(app, spec);
  // What /openapi.json, /openapi.yaml and /docs publish: `servers` from PUBLIC_API_URL.
  const published = publishedSpec(spec, config.publicApiUrl);
  const passwords = createPasswordHasher({
    cost: config.bcryptCost,
    threads: config.bcryptThreads,
    nice: config.bcryptNice,
  });
  app.addHook('onClose', () => passwords.close());
  const tokens = createTokenService(app, config.jwt.expiresInSeconds);
  const users = createUsersRepository(database.db);
  const sessions = createSessionsRepository(database.db, config.sessions);
  const { maxFailures, windowSeconds } = config.loginLimit;
  const loginLimits = createLoginLimits({
    failures: createLoginFailuresRepository(database.db, { windowSeconds }),
    maxFailures,
  });
  const stopCleanup = loginLimits.startCleanup({
    everyMs: Math.min(Math.max(windowSeconds, 60), 3600) * 1000,
    onError: (error) => app.log.warn({ err: error }, 'clearing expired login failures failed'),
  });
  app.addHook('onClose', async () => stopCleanup());
  // Ended sessions (their refresh tokens with them) and used or expired email tokens are
  // deleted a day after their end, a batch every ten minutes.
  const stopHousekeeping = every(
    10 * 60_000,
    () => deleteEndedRows(database.db, { idleTimeoutSeconds: config.sessions.idleTimeoutSeconds }),
    (error) => app.log.warn({ err: error }, 'deleting ended sessions and tokens failed'),
  );
  app.addHook('onClose', async () => stopHousekeeping());
  const sessionsService = createSessionsService({
    sessions,
    users,
    passwords,
    tokens,
    loginLimits,
  });

  // Emails are queued in the outbox by the transaction that causes them and sent by this
  // loop; with several instances, each runs one and no email goes out twice.
  const emailLog = app.log.child({ component: 'email' });
  const transport = config.email.smtpUrl
    ? createSmtpTransport(config.email.smtpUrl, config.email.from)
    : createLogTransport(emailLog, { withLinks: config.email.logLinks });
  if (transport.name === 'log' && !config.email.logLinks) {
    emailLog.warn(
      'SMTP_URL is not set: emails are not sent, only logged, without their links (EMAIL_LOG_LINKS=true writes them to the log)',
    );
  }
  const outbox = createOutboxRepository(database.db);
  app.metrics.observe({ pool: () => database.poolStats?.(), outboxDue: () => outbox.countDue() });
  const delivery = createEmailDelivery({
    outbox,
    transport,
    log: emailLog,
    pollIntervalMs: config.email.pollIntervalMs,
    maxAttempts: config.email.maxAttempts,
    onDead: (reason, count) => app.metrics.emailsDead(reason, count),
  });
  app.decorate('emailDelivery', delivery);
  // Once the schema is current: an embedded database is migrated while the server starts.
  app.addHook('onReady', async () => {
    void Promise.resolve(deps.migrated).then(
      () => delivery.start(),
      () => undefined,
    );
  });
  // Before the database closes (onClose): the batch in hand is sent and marked first.
  app.addHook('preClose', async () => {
    await delivery.stop();
    await transport.close();
  });
  const mail = createAccountMail({ ...config.email, nudge: () => delivery.nudge() });

  const handlers: Handlers = {
    ...createMetaHandlers({
      ping: () => database.ping(),
      ...(redis ? { pingRedis: (timeoutMs: number) => redis.ping(timeoutMs) } : {}),
      closing: () => app.closing(),
      spec: published,
      metrics: () => app.metrics.scrape(),
    }),
    ...createUsersHandlers(createUsersService({ users, passwords, mail, sessions })),
    ...createAuthHandlers(
      createAuthService({ users, passwords, sessions: sessionsService, loginLimits }),
      sessionsService,
    ),
    ...createAccountHandlers(
      createAccountService({ accounts: createAccountRepository(database.db), passwords, mail }),
    ),
    ...createPostsHandlers(
      createPostsService({
        posts: createPostsRepository(database.db, { searchLanguage: config.searchLanguage }),
      }),
    ),
  };
  // Posts' search column must follow SEARCH_LANGUAGE (npm run db:search-language sets it).
  app.addHook('onReady', async () => {
    await deps.migrated;
    try {
      await checkSearchLanguage(database.db, config.searchLanguage);
    } catch (error) {
      if (error instanceof StartupError) throw error;
      // The server starts without its database (and answers 503 until it is back).
      app.log.warn({ err: error }, 'SEARCH_LANGUAGE: could not check the search index of posts');
    }
  });
  const admin = config.admin;
  if (admin) {
    // At start-up, once the schema is current: the server is not ready without its admin.
    app.addHook('onReady', async () => {
      await deps.migrated;
      const { action, user } = await ensureAdminAccount({ users, passwords }, admin);
      const facts = { userId: user.id, email: user.email, username: user.username };
      const said = {
        created: 'ADMIN_EMAIL: admin account created',
        promoted: 'ADMIN_EMAIL: existing account promoted to admin (its password is unchanged)',
        unchanged: 'ADMIN_EMAIL: the account is an admin already',
      };
      app.log.info(facts, said[action]);
      if (!user.isActive) app.log.warn(facts, 'ADMIN_EMAIL: the admin account is disabled');
    });
  }
  await registerContract(app, {
    spec,
    handlers,
    securityHandlers: {
      ...createSecurityHandlers(createAuthenticator({ tokens, sessions })),
      metricsToken: (request) => app.metrics.authenticate(request),
    },
    routeConfig: {
      login: rateLimitRoute(config, 'login'),
      createUser: rateLimitRoute(config, 'createUser'),
      refreshToken: rateLimitRoute(config, 'refreshToken'),
      changePassword: rateLimitRoute(config, 'changePassword'),
      requestPasswordReset: rateLimitRoute(config, 'requestPasswordReset'),
      resetPassword: rateLimitRoute(config, 'resetPassword'),
      verifyEmail: rateLimitRoute(config, 'verifyEmail'),
      resendVerification: rateLimitRoute(config, 'resendVerification'),
    },
  });
  await registerDocs(app, { document: published.document, publicApiUrl: config.publicApiUrl });
  // Where the development log's links lead; in production PUBLIC_URL is the application's.
  if (config.env !== 'production') await registerAccountPages(app);
  checkRoutes();
}
