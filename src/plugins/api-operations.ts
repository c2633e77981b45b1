import type { FastifyRequest, RouteOptions } from 'fastify';
import { operationsOf, type OpenApiDocument } from '../http/contract.js';

/**
 * The operations that are not the API's traffic: the probes (orchestrators and load
 * balancers call them every few seconds), the metrics (a scraper, behind its own token)
 * and the documentation. They are never counted against the global limit nor shed under
 * load.
 */
export const OPERATIONAL_OPERATIONS: ReadonlySet<string> = new Set([
  'getHealth',
  'getReadiness',
  'getOpenApiDocument',
  'getOpenApiDocumentYaml',
  'getProblemType',
  'getMetrics',
]);

/**
 * The operationId of the API operation a request is routed to, or undefined for the
 * operational ones, the documentation pages and requests no operation matches.
 */
export type ApiOperationOf = ((request: FastifyRequest) => string | undefined) & {
  /** The same by Fastify route (`GET /api/users/:id`), for hooks added as routes are. */
  byRoute: ReadonlyMap<string, string>;
};

export function apiOperationLookup(spec: OpenApiDocument): ApiOperationOf {
  const byRoute = apiOperationsByRoute(spec);
  const lookup = (request: FastifyRequest) => {
    const url = request.routeOptions.url;
    return url === undefined ? undefined : byRoute.get(`${request.method} ${url}`);
  };
  return Object.assign(lookup, { byRoute });
}

/**
 * The API operations by Fastify route (`GET /api/users/:id`), as glue registers them, and
 * the HEAD twin of each GET.
 */
function apiOperationsByRoute(spec: OpenApiDocument): Map<string, string> {
  const byRoute = new Map<string, string>();
  for (const { operationId, method, path } of operationsOf(spec)) {
    if (OPERATIONAL_OPERATIONS.has(operationId)) continue;
    // Fastify's form of the path, as glue registers it: `{id}` → `:id`.
    const url = path.replace(/\{([^}]+)\}/g, ':$1');
    byRoute.set(`${method} ${url}`, operationId);
    // A GET's HEAD twin (exposeHeadRoutes) is the same operation: counted, limited and
    // shed like it.
    if (method === 'GET') byRoute.set(`HEAD ${url}`, operationId);
  }
  return byRoute;
}

/**
 * The API operation a route being added serves (undefined for any other route), for hooks
 * that only API operations get: known once, when the route is added, not on every request.
 */
export function operationOfRoute(
  apiOperationOf: ApiOperationOf,
  route: Pick<RouteOptions, 'method' | 'url'>,
): string | undefined {
  // Glue adds one route per operation, with one method.
  if (typeof route.method !== 'string') return undefined;
  return apiOperationOf.byRoute.get(`${route.method.toUpperCase()} ${route.url}`);
}
