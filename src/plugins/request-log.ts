import type { FastifyBaseLogger } from 'fastify';
import fp from 'fastify-plugin';

const logsInfo = new Set(['trace', 'debug', 'info']);

/** Whether a logger writes info lines (a request's logger has its route's level). */
function writesInfo(log: FastifyBaseLogger): boolean {
  return logsInfo.has(log.level);
}

/**
 * One log line per request, at info, when its response is sent: method, URL, client
 * address, status and time. Fastify's own request logging writes two lines (one on
 * arrival, one on completion), which doubled the logging cost of every request.
 * A request's log level is its route's: the probes (/health, /ready) log at warn, so they
 * leave no line. Nothing is registered when the server logs nothing at info (LOG_LEVEL=warn
 * and above): then a request pays nothing for this.
 */
export const requestLog = fp(
  async (app) => {
    // Orchestrators probe these every few seconds: their requests are not logged at info
    // (a warning or an error during one still is).
    app.addHook('onRoute', (route) => {
      if (route.url === '/health' || route.url === '/ready') route.logLevel = 'warn';
    });
    if (!writesInfo(app.log)) return;
    app.addHook('onResponse', (request, reply, done) => {
      if (writesInfo(request.log)) {
        request.log.info(
          // Fastify's serialisers: method, URL, host, client address and port; status.
          { req: request, res: reply, responseTime: reply.elapsedTime },
          'request completed',
        );
      }
      done();
    });
  },
  { name: 'request-log' },
);
