import type { InjectOptions } from 'fastify';
import { loadSpec } from '../../src/spec.js';

interface SpecOperation {
  operationId: string;
  security?: Array<Record<string, string[]>>;
  requestBody?: { content: Record<string, { example?: unknown }> };
}

const spec = loadSpec() as unknown as {
  paths: Record<string, Record<string, unknown>>;
};
const methods = new Set(['get', 'put', 'post', 'delete', 'patch']);

/** Whose resources the calls name: the account and one of its sessions. */
export interface CallOwner {
  userId: string;
  sessionId: string;
}

export interface SecuredCall {
  operationId: string;
  request: InjectOptions;
}

const NO_POST_ID = '3f0d9c8e-2b1a-4c5d-8e7f-6a5b4c3d2e1f';
const NO_WEBHOOK_ID = '6c1e0f4a-8d2b-4e7a-9c3f-5b8d2a1e0f47';

/** A path parameter's value: the owner's own resources, so a live token would succeed. */
function paramValue(path: string, name: string, owner: CallOwner): string {
  if (name === 'id' && path.startsWith('/api/auth/sessions/')) return owner.sessionId;
  if (name === 'id' && path.startsWith('/api/users/')) return owner.userId;
  if (name === 'id' && path.startsWith('/api/admin/users/')) return owner.userId;
  // The owner has no posts: with a live token these answer 404, never 401.
  if (name === 'id' && path.startsWith('/api/posts/')) return NO_POST_ID;
  if (name === 'slug' && path.startsWith('/api/posts/by-slug/')) return 'no-such-post';
  // Nobody's: with a live token an admin gets 404 and anybody else 403, never 401.
  if (name === 'webhookId' || name === 'deliveryId') return NO_WEBHOOK_ID;
  throw new Error(`securedCalls: no value for {${name}} in ${path}; add one here`);
}

/**
 * One well-formed request, with `headers`, for EVERY operation of the spec that needs an
 * access token (read from the spec, so a new secured operation is covered by itself).
 * Bodies are the spec's own request examples.
 */
export function securedCalls(owner: CallOwner, headers: Record<string, string>): SecuredCall[] {
  const calls: SecuredCall[] = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, value] of Object.entries(item)) {
      if (!methods.has(method)) continue;
      const operation = value as SpecOperation;
      if (!operation.security?.some((requirement) => 'bearerAuth' in requirement)) continue;
      const url = path.replace(/\{(\w+)\}/g, (_match, name: string) =>
        paramValue(path, name, owner),
      );
      const request: InjectOptions = {
        method: method.toUpperCase(),
        url,
        headers,
      };
      const json = operation.requestBody?.content['application/json'];
      if (operation.requestBody) {
        if (json?.example === undefined) {
          throw new Error(`securedCalls: ${operation.operationId} has no JSON request example`);
        }
        request.payload = json.example as InjectOptions['payload'];
      }
      calls.push({ operationId: operation.operationId, request });
    }
  }
  return calls;
}
