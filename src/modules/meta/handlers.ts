import { ServiceUnavailableError } from '../../http/errors.js';
import type { HandlerGroup } from '../../http/handler-types.js';

export type MetaOperations = 'getHealth' | 'getReadiness' | 'getOpenApiDocument';

export function createMetaHandlers(deps: {
  ping: () => Promise<void>;
  spec: { openapi: string; info: Record<string, unknown>; paths: Record<string, unknown> };
}): HandlerGroup<MetaOperations> {
  return {
    async getHealth() {
      return { status: 200, body: { status: 'ok' } };
    },
    async getReadiness({ request }) {
      try {
        await deps.ping();
      } catch (error) {
        request.log.warn({ err: error }, 'readiness check: the database does not answer');
        throw new ServiceUnavailableError('The database does not answer.');
      }
      return { status: 200, body: { status: 'ready', database: 'up' } };
    },
    async getOpenApiDocument() {
      return { status: 200, body: deps.spec };
    },
  };
}
