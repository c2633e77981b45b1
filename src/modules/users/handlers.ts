import { showRead } from '../../http/entity-tags.js';
import type { HandlerGroup } from '../../http/handler-types.js';
import { requirePrincipal } from '../../http/security.js';
import type { UsersService } from './service.js';

export type UsersOperations =
  | 'createUser'
  | 'listUsers'
  | 'getUser'
  | 'updateUser'
  | 'deleteUser'
  | 'adminListUsers'
  | 'adminGetUser';

export function createUsersHandlers(service: UsersService): HandlerGroup<UsersOperations> {
  return {
    async createUser({ body, reply, refuse }) {
      const created = await service.create(body);
      if (!created.ok) return refuse(created.error);
      return reply(201, created.value, { Location: `/api/users/${created.value.id}` });
    },
    // Profiles are public: the same answer for everybody.
    async listUsers(input) {
      return showRead(input, await service.list(input.query), 'public, no-cache');
    },
    async getUser(input) {
      return showRead(input, await service.getProfile(input.params.id), 'public, no-cache');
    },
    async updateUser({ params, body, principal, respond }) {
      return respond(200, await service.update(requirePrincipal(principal), params.id, body));
    },
    async deleteUser({ params, principal, respond }) {
      return respond(200, await service.remove(requirePrincipal(principal), params.id));
    },
    async adminListUsers({ query, principal, respond }) {
      return respond(200, await service.listAccounts(requirePrincipal(principal), query));
    },
    async adminGetUser({ params, principal, respond }) {
      return respond(200, await service.getAccount(requirePrincipal(principal), params.id));
    },
  };
}
