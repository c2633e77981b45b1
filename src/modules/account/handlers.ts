import type { HandlerGroup } from '../../http/handler-types.js';
import { requirePrincipal } from '../../http/security.js';
import type { AccountService } from './service.js';

export type AccountOperations =
  'requestPasswordReset' | 'resetPassword' | 'verifyEmail' | 'resendVerification';

export function createAccountHandlers(service: AccountService): HandlerGroup<AccountOperations> {
  return {
    async requestPasswordReset({ body, reply }) {
      return reply(202, await service.requestPasswordReset(body));
    },
    async resetPassword({ body, reply, refuse }) {
      const reset = await service.resetPassword(body);
      return reset.ok ? reply(204, undefined) : refuse(reset.error);
    },
    async verifyEmail({ body, reply, refuse }) {
      const verified = await service.verifyEmail(body);
      return verified.ok ? reply(204, undefined) : refuse(verified.error);
    },
    async resendVerification({ principal, respond }) {
      return respond(202, await service.resendVerification(requirePrincipal(principal)));
    },
  };
}
