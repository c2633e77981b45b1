import type { HandlerGroup } from '../../http/handler-types.js';
import { requirePrincipal } from '../../http/security.js';
import type { AuthService } from './service.js';

export type AuthOperations = 'login' | 'getMe';

export function createAuthHandlers(service: AuthService): HandlerGroup<AuthOperations> {
  return {
    async login({ body, respond }) {
      return respond(200, await service.login(body));
    },
    async getMe({ principal, respond }) {
      return respond(200, await service.me(requirePrincipal(principal)));
    },
  };
}
