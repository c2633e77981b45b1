import type { FastifyRequest } from 'fastify';
import type { HandlerGroup } from '../../http/handler-types.js';
import { requirePrincipal } from '../../http/security.js';
import type { AuthService } from './service.js';
import type { Client, SessionsService } from './sessions-service.js';

export type AuthOperations =
  | 'login'
  | 'getMe'
  | 'refreshToken'
  | 'logout'
  | 'logoutAll'
  | 'listSessions'
  | 'revokeSession'
  | 'changePassword';

/** Responses that carry tokens are kept by no cache (RFC 6749 §5.1). */
const noStore = { 'Cache-Control': 'no-store' } as const;

/** What a new session records of its client: not input the contract validates. */
function clientOf(request: FastifyRequest): Client {
  return { userAgent: request.headers['user-agent'], ipAddress: request.ip };
}

export function createAuthHandlers(
  service: AuthService,
  sessions: SessionsService,
): HandlerGroup<AuthOperations> {
  return {
    async login({ body, request, respond }) {
      return respond(200, await service.login(body, clientOf(request)), noStore);
    },
    async getMe({ principal, respond }) {
      return respond(200, await service.me(requirePrincipal(principal)));
    },
    async refreshToken({ body, respond }) {
      return respond(200, await sessions.refresh(body.refreshToken), noStore);
    },
    async logout({ principal, reply }) {
      await sessions.logout(requirePrincipal(principal));
      return reply(204, undefined);
    },
    async logoutAll({ principal, reply }) {
      await sessions.logoutAll(requirePrincipal(principal));
      return reply(204, undefined);
    },
    async listSessions({ principal, reply }) {
      return reply(200, await sessions.list(requirePrincipal(principal)));
    },
    async revokeSession({ params, principal, respond }) {
      return respond(204, await sessions.revoke(requirePrincipal(principal), params.id));
    },
    async changePassword({ body, principal, respond }) {
      return respond(
        200,
        await sessions.changePassword(requirePrincipal(principal), body),
        noStore,
      );
    },
  };
}
