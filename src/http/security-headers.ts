import helmet from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';

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
export async function registerSecurityHeaders(
  app: FastifyInstance,
  options: { hstsMaxAgeSeconds: number | undefined },
): Promise<void> {
  const { hstsMaxAgeSeconds } = options;
  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
    },
    xFrameOptions: { action: 'deny' },
    strictTransportSecurity:
      hstsMaxAgeSeconds === undefined
        ? false
        : { maxAge: hstsMaxAgeSeconds, includeSubDomains: false },
  });
}
