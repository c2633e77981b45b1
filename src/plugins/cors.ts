import fp from 'fastify-plugin';
import type { Config } from '../config/index.js';
import type { AllowedMethods } from '../http/allowed-methods.js';
import type { OpenApiDocument } from '../http/contract.js';

/**
 * CORS for the origins of CORS_ORIGINS, and for no other. A request from one of them gets
 * `Access-Control-Allow-Origin` with that origin (never `*`, never an origin that is not in
 * the list); a request from any other gets no CORS header, and the browser keeps the
 * answer from the page. A preflight to a path of the spec answers 204 with the methods of
 * that path; to any other path it is a request like any other (404).
 *
 * Not @fastify/cors: it adds a catch-all `OPTIONS *` route outside the spec, answers a
 * plain OPTIONS with a text/plain 400, and a preflight to a path that does not exist 204.
 */

/** The request headers a page may send: the spec's header parameters, the body's type, the token. */
const ALLOWED_REQUEST_HEADERS = [
  'Authorization',
  'Content-Type',
  'If-Match',
  'If-None-Match',
  'X-Request-Id',
].join(', ');

/** How long a browser may keep a preflight's answer (seconds). */
const PREFLIGHT_MAX_AGE = 600;

/** Response headers a page can read without being told (the CORS-safelisted ones). */
const SAFELISTED = new Set([
  'cache-control',
  'content-language',
  'content-length',
  'content-type',
  'expires',
  'last-modified',
  'pragma',
]);

/** Every response header the spec declares (ETag, Retry-After, X-Request-Id, …), for pages to read. */
export function declaredResponseHeaders(spec: OpenApiDocument): string[] {
  const names = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return (node as unknown[]).forEach(walk);
    if (node === null || typeof node !== 'object') return;
    for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
      if (key === 'headers' && value !== null && typeof value === 'object') {
        for (const name of Object.keys(value)) names.add(name);
      }
      walk(value);
    }
  };
  // Not components.headers: its keys are the names of components, not of headers.
  walk(spec.paths);
  walk((spec.components as { responses?: unknown } | undefined)?.responses);
  walk((spec as { 'x-unrouted-responses'?: unknown })['x-unrouted-responses']);
  return [...names].filter((name) => !SAFELISTED.has(name.toLowerCase())).sort();
}

export interface CorsOptions {
  origins: Config['corsOrigins'];
  allowedMethods: AllowedMethods;
  spec: OpenApiDocument;
}

/**
 * At the root: a preflight matches no route (the spec has no OPTIONS operations), so it is
 * answered by this hook before the not-found one would refuse it.
 */
export const cors = fp<CorsOptions>(
  async (app, options) => {
    if (options.origins.length === 0) return;
    const origins = new Set(options.origins);
    const exposed = declaredResponseHeaders(options.spec).join(', ');
    app.addHook('onRequest', async (request, reply) => {
      // The answer depends on Origin: a cache must not give one origin's answer to another.
      reply.header('vary', 'Origin');
      const { origin } = request.headers;
      if (origin === undefined || !origins.has(origin)) return;
      reply.header('access-control-allow-origin', origin);
      const asked = request.headers['access-control-request-method'];
      if (request.method === 'OPTIONS' && request.is404 && asked !== undefined) {
        const path = request.url.split('?', 1)[0] ?? request.url;
        const methods = options.allowedMethods(path);
        if (methods.length > 0) {
          reply.code(204).headers({
            'access-control-allow-methods': methods.join(', '),
            'access-control-allow-headers': ALLOWED_REQUEST_HEADERS,
            'access-control-max-age': String(PREFLIGHT_MAX_AGE),
          });
          return reply.send();
        }
      }
      reply.header('access-control-expose-headers', exposed);
    });
  },
  { name: 'cors' },
);
