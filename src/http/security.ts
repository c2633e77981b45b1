import fastifyJwt from '@fastify/jwt';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/index.js';
import type { Principal } from '../lib/principal.js';
import { UnauthorizedError } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; set by bearerAuth on secured operations, else null. */
    principal: Principal | null;
  }
}

/** One handler per `components.securitySchemes` entry of the spec (checked at start-up). */
export type SecurityHandlers = Record<string, (request: FastifyRequest) => Promise<void>>;

/**
 * Reads the caller's credentials from the request; throws a domain UnauthenticatedError
 * (a 401) when they are missing or invalid.
 */
export type Authenticate = (request: FastifyRequest) => Promise<Principal>;

export function createSecurityHandlers(authenticate: Authenticate): SecurityHandlers {
  return {
    async bearerAuth(request) {
      request.principal = await authenticate(request);
    },
  };
}

/**
 * For handlers of secured operations: the security handler has run, so a missing principal
 * means the spec lost its `security` entry. Refuse rather than act as nobody.
 */
export function requirePrincipal(principal: Principal | null): Principal {
  if (!principal) throw new UnauthorizedError();
  return principal;
}

/**
 * What the security handlers verify with: @fastify/jwt (its `app.jwt` signs, its
 * `request.jwtVerify()` verifies) with HS256 pinned and every claim the tokens carry
 * required, and `request.principal`, null until a security handler sets it. At the root:
 * both decorate it.
 */
export const authentication = fp<{ jwt: Config['jwt'] }>(
  async (app, { jwt }) => {
    await app.register(fastifyJwt, {
      secret: jwt.secret,
      sign: {
        algorithm: 'HS256',
        iss: jwt.issuer,
        aud: jwt.audience,
        // @fastify/jwt reads a number as seconds.
        expiresIn: jwt.expiresInSeconds,
      },
      verify: {
        algorithms: ['HS256'],
        allowedIss: jwt.issuer,
        allowedAud: jwt.audience,
        // `sid`: every access token belongs to a session, checked on every request.
        requiredClaims: ['exp', 'iss', 'aud', 'sub', 'sid'],
      },
    });
    app.decorateRequest('principal', null);
  },
  { name: 'authentication' },
);
