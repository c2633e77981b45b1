import { NotFoundError, UnavailableError } from '../../errors.js';
import { loggableError, problemOf } from '../../http/error-handler.js';
import { ServiceUnavailableError } from '../../http/errors.js';
import type { HandlerGroup } from '../../http/handler-types.js';
import { problemTypeNamed } from '../../http/problem-types.js';
import { withTimeout } from '../../lib/timeout.js';

export type MetaOperations =
  | 'getHealth'
  | 'getReadiness'
  | 'getOpenApiDocument'
  | 'getOpenApiDocumentYaml'
  | 'getProblemType'
  | 'getMetrics';

/** How long /ready waits for each dependency (they are asked at the same time). */
export const READINESS_CHECK_TIMEOUT_MS = 1000;

/** Resolves when `check` does within `timeoutMs`, rejects otherwise. */
async function within(check: () => Promise<void>, timeoutMs: number): Promise<void> {
  await withTimeout(check(), timeoutMs, `no answer within ${timeoutMs} ms`);
}

export function createMetaHandlers(deps: {
  ping: () => Promise<void>;
  /**
   * Set when rate-limit counts are shared through Redis: a PING. A Redis that does not
   * answer is reported (`redis: down`) but leaves the instance ready: the rate limits fail
   * open, and every other request is served as usual.
   */
  pingRedis?: (timeoutMs: number) => Promise<void>;
  checkTimeoutMs?: number;
  /** Whether the server is shutting down: it is not ready then, whatever the database says. */
  closing?: () => boolean;
  /** The published spec (src/spec.ts), as a document and as YAML. */
  spec: {
    document: { openapi: string; info: Record<string, unknown>; paths: Record<string, unknown> };
    yaml: () => string;
  };
  /** The metrics, in the Prometheus text format (the security handler has let the scraper in). */
  metrics: () => Promise<string>;
}): HandlerGroup<MetaOperations> {
  return {
    async getHealth({ reply }) {
      return reply(200, { status: 'ok' });
    },
    async getReadiness({ request, reply, refuse }) {
      if (deps.closing?.()) return refuse(new UnavailableError('The server is shutting down.'));
      const timeoutMs = deps.checkTimeoutMs ?? READINESS_CHECK_TIMEOUT_MS;
      const { pingRedis } = deps;
      const [database, redis] = await Promise.allSettled([
        within(deps.ping, timeoutMs),
        pingRedis ? within(() => pingRedis(timeoutMs), timeoutMs) : Promise.resolve(),
      ]);
      // The Redis connection logs its own outages, once each: not on every probe.
      const redisState = pingRedis ? (redis.status === 'fulfilled' ? 'up' : 'down') : undefined;
      if (database.status === 'rejected') {
        request.log.warn(
          { err: loggableError(database.reason) },
          'readiness check: the database does not answer',
        );
        const problem = problemOf(
          new ServiceUnavailableError('The database does not answer.'),
          request,
        );
        const failedChecks: Array<'database' | 'redis'> = ['database'];
        if (redisState === 'down') failedChecks.push('redis');
        return reply(503, { ...problem, status: 503, failedChecks });
      }
      return reply(200, {
        status: 'ready',
        database: 'up',
        ...(redisState ? { redis: redisState } : {}),
      });
    },
    async getOpenApiDocument({ reply }) {
      return reply(200, deps.spec.document);
    },
    async getOpenApiDocumentYaml({ reply }) {
      return reply(200, deps.spec.yaml());
    },
    async getMetrics({ reply }) {
      return reply(200, await deps.metrics());
    },
    async getProblemType({ params, reply, refuse }) {
      const problemType = problemTypeNamed(params.code);
      return problemType ? reply(200, problemType) : refuse(new NotFoundError('Problem type'));
    },
  };
}
