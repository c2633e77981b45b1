import type { IncomingMessage, ServerResponse } from 'node:http';
import fastifyHelmet, { type FastifyHelmetOptions } from '@fastify/helmet';
import fp from 'fastify-plugin';
import helmet, { type HelmetOptions } from 'helmet';
import type { Config } from '../config/index.js';

export interface SecurityHeadersOptions {
  hstsMaxAgeSeconds: Config['hstsMaxAgeSeconds'];
}

/**
 * Helmet's security headers on every response (X-Content-Type-Options, X-Frame-Options,
 * Referrer-Policy, …). The API answers JSON, never a page, so its Content-Security-Policy
 * allows nothing at all; the one HTML page, /docs, sets a policy of its own (docs.ts).
 *
 * Strict-Transport-Security only when HSTS_MAX_AGE is set: sent over plain http (a local
 * server, or one behind a proxy that does not terminate TLS), it would make a browser
 * refuse that host's http for the whole max-age. Without includeSubDomains: the API's
 * host does not speak for the other hosts under it.
 */
function helmetOptions({ hstsMaxAgeSeconds }: SecurityHeadersOptions): FastifyHelmetOptions {
  return {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
    },
    xFrameOptions: { action: 'deny' },
    strictTransportSecurity:
      hstsMaxAgeSeconds === undefined
        ? false
        : { maxAge: hstsMaxAgeSeconds, includeSubDomains: false },
  };
}

/** At the root: every response gets them, the not-found handler's and the error handler's too. */
export const securityHeaders = fp<SecurityHeadersOptions>(
  async (app, options) => {
    await app.register(fastifyHelmet, helmetOptions(options));
  },
  { name: 'security-headers' },
);

/**
 * The same headers, by name, for the answers written without Fastify (Node's refusals of
 * requests it cannot read, src/http/client-errors.ts). They do not depend on the request.
 */
export function securityHeadersOf(options: SecurityHeadersOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  const response = {
    setHeader: (name: string, value: unknown) => void (headers[name] = String(value)),
    removeHeader: (name: string) => void delete headers[name],
  };
  // @fastify/helmet's copy of helmet's option types is another type, of the same shape.
  helmet(helmetOptions(options) as HelmetOptions)(
    {} as IncomingMessage,
    response as unknown as ServerResponse,
    () => undefined,
  );
  return headers;
}
