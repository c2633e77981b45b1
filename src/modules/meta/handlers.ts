import { NotFoundError, UnavailableError } from '../../errors.js';
import { loggableError } from '../../http/error-handler.js';
import type { HandlerGroup } from '../../http/handler-types.js';
import { problemTypeNamed } from '../../http/problem-types.js';

export type MetaOperations =
  | 'getHealth'
  | 'getReadiness'
  | 'getOpenApiDocument'
  | 'getOpenApiDocumentYaml'
  | 'getProblemType'
  | 'getMetrics';

export function createMetaHandlers(deps: {
  ping: () => Promise<void>;
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
      try {
        await deps.ping();
      } catch (error) {
        request.log.warn(
          { err: loggableError(error) },
          'readiness check: the database does not answer',
        );
        return refuse(new UnavailableError('The database does not answer.'));
      }
      return reply(200, { status: 'ready', database: 'up' });
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
