import type { FastifyInstance, onRequestHookHandler } from 'fastify';
import { AppError } from './errors.js';

/** The longest path parameter an operation takes: a post's slug (255 characters). */
export const MAX_PATH_PARAMETER_LENGTH = 255;

const tooLong = () =>
  new AppError(414, 'URI_TOO_LONG', 'URI too long', 'A path parameter is too long.');

/**
 * `414 URI_TOO_LONG` for a path parameter over MAX_PATH_PARAMETER_LENGTH, as a hook of each
 * operation with path parameters, added after the rate limits' (which put theirs first):
 * the request is counted like any other of the operation, and its answer carries the
 * budget (X-RateLimit-*) as every answer of an API operation does. The router's own limit
 * (routerOptions.maxParamLength in app.ts) would refuse it before any operation is chosen.
 */
export function registerPathParameterLimit(app: FastifyInstance): void {
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
}
