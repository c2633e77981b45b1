import type { Server } from 'node:http';
import { LogController, type FastifyHttpOptions, type FastifyServerOptions } from 'fastify';
import type { Config } from '../config/index.js';
import { createClientErrorHandler, routeHostless } from '../http/client-errors.js';
import { sendProblem } from '../http/error-handler.js';
import { serializersCompiledWhenFirstUsed } from '../http/serialization.js';
import { serverLimits } from './limits.js';
import { requestIdOf } from './request-id.js';
import { securityHeadersOf } from './security-headers.js';

/** Fastify's form of TRUST_PROXY: a hop count becomes "the first N hops" (what proxy-addr does). */
function trustProxyOption(
  trust: Config['trustProxy'],
): false | string[] | ((address: string, hop: number) => boolean) {
  if (typeof trust === 'number') return (_address, hop) => hop < trust;
  return trust === false ? false : [...trust];
}

/**
 * The options of the Fastify server itself: what cannot be a plugin, because the server
 * reads it as it is made (its limits and timeouts, how requests are identified, and what
 * happens to the requests Node.js or the router refuse before any hook runs).
 */
export function serverOptions(
  config: Config,
  logger: FastifyServerOptions['logger'],
): FastifyHttpOptions<Server> {
  const limits = serverLimits(config);
  return {
    ...limits,
    logger,
    schemaController: serializersCompiledWhenFirstUsed,
    // A request without Host is refused by the 404 handler, as a problem (routeHostless).
    http: { ...limits.http, requireHostHeader: false },
    genReqId: requestIdOf,
    // One line per request instead of Fastify's two (src/plugins/request-log.ts).
    logController: new LogController({
      requestIdLogLabel: 'requestId',
      disableRequestLogging: true,
    }),
    // Requests Node.js cannot read (malformed, too slow, headers too large) become problems
    // too, with a request id and the security headers.
    clientErrorHandler: createClientErrorHandler({
      maxHeaderSize: config.http.maxHeaderSize,
      headers: securityHeadersOf({ hstsMaxAgeSeconds: config.hstsMaxAgeSeconds }),
    }),
    rewriteUrl: routeHostless,
    // Router errors (bad URL encoding) become problems too.
    frameworkErrors: (error, request, reply) => void sendProblem(error, request, reply),
    // HEAD for every GET (RFC 9110 §9.3.2): Fastify adds a twin to each GET route, glue's
    // included, answering with the GET's status and headers and no body. The spec says so
    // once ("HEAD"), not as operations of their own: restrictRoutesToSpec lets these by.
    exposeHeadRoutes: true,
    trustProxy: trustProxyOption(config.trustProxy),
    // Closing is the graceful-close plugin's (/ready answers its own 503 problem).
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  };
}
