import type { FastifyRequest } from 'fastify';
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
