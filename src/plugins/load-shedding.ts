import underPressure from '@fastify/under-pressure';
import type { onRequestHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/index.js';
import { AppError } from '../http/errors.js';
import { operationOfRoute, type ApiOperationOf } from './api-operations.js';

/** Seconds a shed request is told to wait: long enough for a backlog to clear. */
export const OVERLOAD_RETRY_AFTER_SECONDS = 5;

/** How often the process is measured (under-pressure's default). */
const SAMPLE_INTERVAL_MS = 1000;

export interface LoadSheddingOptions {
  /**
   * The mean event-loop delay over a second (ms), the event loop's utilisation (0 to 1) and
   * the V8 heap in use (bytes); 0: not checked.
   */
  limits: Config['overload'];
  apiOperationOf: ApiOperationOf;
}

/**
 * Load shedding: @fastify/under-pressure measures (once a second); while the process is
 * past a limit, API operations answer `503 OVERLOADED` with `Retry-After`, before any work
 * is done for them. The probes and the documentation are always answered: /health so that
 * a busy process is not killed as a dead one, /ready so that a load spike does not pull
 * every instance out of the load balancer at once (each one sheds on its own).
 * under-pressure's healthCheck is not used: /ready checks the dependencies itself.
 *
 * The refusal is a route hook added after the rate limits' (register this after them): a
 * shed request is counted like any other, and its 503 carries the X-RateLimit-* headers
 * of its operation, as every answer of an API operation does. At the root: under-pressure
 * decorates it, and the hook goes to every operation's route, wherever it is registered.
 */
export const loadShedding = fp<LoadSheddingOptions>(
  async (app, options) => {
    const { maxEventLoopDelayMs, maxEventLoopUtilization, maxHeapUsedBytes } = options.limits;
    if (maxEventLoopDelayMs === 0 && maxEventLoopUtilization === 0 && maxHeapUsedBytes === 0) {
      return;
    }
    await app.register(underPressure, {
      maxEventLoopDelay: maxEventLoopDelayMs,
      maxEventLoopUtilization,
      maxHeapUsedBytes,
      sampleInterval: SAMPLE_INTERVAL_MS,
      // under-pressure's own refusal would come before the rate limits: it only measures.
      pressureHandler: () => undefined,
    });
    // The first samples would count start-up's own work (compiling the spec's schemas) as
    // event-loop delay: the limits apply from two samples after the app is ready.
    let armedAt = Number.POSITIVE_INFINITY;
    app.addHook('onReady', async () => {
      armedAt = performance.now() + 2 * SAMPLE_INTERVAL_MS;
    });
    const seconds = String(OVERLOAD_RETRY_AFTER_SECONDS);
    // A callback hook: it runs on every API request, and does nothing but read two numbers.
    const shed: onRequestHookHandler = (_request, _reply, done) => {
      if (performance.now() < armedAt || !app.isUnderPressure()) return done();
      done(
        new AppError(
          503,
          'OVERLOADED',
          'Overloaded',
          `The server is too busy to take this request. Try again in ${seconds} seconds.`,
          undefined,
          { 'retry-after': seconds },
        ),
      );
    };
    // API operations only: the probes, the docs and the metrics are always answered.
    app.addHook('onRoute', (route) => {
      if (operationOfRoute(options.apiOperationOf, route) === undefined) return;
      const hooks = route.onRequest;
      route.onRequest = hooks === undefined ? [shed] : [...[hooks].flat(), shed];
    });
  },
  { name: 'load-shedding' },
);
