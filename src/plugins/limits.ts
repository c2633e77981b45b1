import type { Server } from 'node:http';
import type { FastifyHttpOptions, onRequestHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/index.js';
import { AppError } from '../http/errors.js';

/**
 * The limits of a request's size and time. Most are the server's own (Fastify's and
 * Node's options, given when the server is made): the body (BODY_LIMIT), the request line
 * and headers, URI and query included (MAX_HEADER_SIZE), and how long a request may take
 * to arrive. A path parameter's length is checked per operation (the plugin below); the
 * query's text in src/http/json-body.ts, as the body's; the rate limits in rate-limits.ts.
 */

/** The longest path parameter an operation takes: a post's slug (255 characters). */
export const MAX_PATH_PARAMETER_LENGTH = 255;

export type ServerLimits = Pick<
  FastifyHttpOptions<Server>,
  'bodyLimit' | 'requestTimeout' | 'connectionTimeout' | 'keepAliveTimeout' | 'routerOptions'
> & { http: NonNullable<FastifyHttpOptions<Server>['http']> };

export function serverLimits(config: Pick<Config, 'bodyLimitBytes' | 'http'>): ServerLimits {
  const { http } = config;
  return {
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
      connectionsCheckingInterval: Math.max(
        250,
        Math.min(30_000, Math.min(http.requestTimeoutMs, http.headersTimeoutMs) / 4),
      ),
    },
    // A path parameter over 255 characters is refused after routing, as an operation's
    // own 414 (pathParameterLimit); the router takes any a request line can hold.
    routerOptions: { maxParamLength: http.maxHeaderSize },
  };
}

const tooLong = () =>
  new AppError(414, 'URI_TOO_LONG', 'URI too long', 'A path parameter is too long.');

/**
 * `414 URI_TOO_LONG` for a path parameter over MAX_PATH_PARAMETER_LENGTH, as a hook of each
 * operation with path parameters, added after the rate limits' (which put theirs first):
 * the request is counted like any other of the operation, and its answer carries the
 * budget (X-RateLimit-*) as every answer of an API operation does. The router's own limit
 * (routerOptions.maxParamLength above) would refuse it before any operation is chosen.
 * At the root, so that it reaches the operations' routes wherever they are registered.
 */
export const pathParameterLimit = fp(
  async (app) => {
    const check: onRequestHookHandler = (request, _reply, done) => {
      const params = request.params as Record<string, string>;
      for (const key in params) {
        if ((params[key]?.length ?? 0) > MAX_PATH_PARAMETER_LENGTH) return done(tooLong());
      }
      done();
    };
    app.addHook('onRoute', (route) => {
      // The spec's operations (glue's routes carry their operationId) with path parameters;
      // not the docs' assets, whose wildcard is a file's path.
      const operationId = (route.schema as { operationId?: unknown } | undefined)?.operationId;
      if (typeof operationId !== 'string' || !route.url.includes(':')) return;
      const hooks = route.onRequest === undefined ? [] : [route.onRequest].flat();
      route.onRequest = [...hooks, check];
    });
  },
  { name: 'path-parameter-limit' },
);
