import type { FastifyRequest } from 'fastify';
import type { TokenService } from '../modules/auth/tokens.js';
import { UnauthorizedError } from './errors.js';
import type { Principal } from './handler-types.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; set by bearerAuth on secured operations, else null. */
    principal: Principal | null;
  }
}

/** One handler per `components.securitySchemes` entry of the spec (checked at start-up). */
export type SecurityHandlers = Record<string, (request: FastifyRequest) => Promise<void>>;

export function createSecurityHandlers(tokens: TokenService): SecurityHandlers {
  return {
    async bearerAuth(request) {
      request.principal = await tokens.authenticate(request);
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
