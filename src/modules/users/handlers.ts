import type { HandlerGroup } from '../../http/handler-types.js';
import { requirePrincipal } from '../../http/security.js';
import type { UsersService } from './service.js';

export type UsersOperations = 'createUser' | 'listUsers' | 'getUser' | 'updateUser' | 'deleteUser';

export function createUsersHandlers(service: UsersService): HandlerGroup<UsersOperations> {
  return {
    async createUser({ body, reply }) {
      const user = await service.create(body);
      return reply(201, user, { location: `/api/users/${user.id}` });
    },
    async listUsers({ query, reply }) {
      return reply(200, await service.list(query));
    },
    async getUser({ params, reply }) {
      return reply(200, await service.getProfile(params.id));
    },
    async updateUser({ params, body, principal, reply }) {
      return reply(200, await service.update(requirePrincipal(principal), params.id, body));
    },
    async deleteUser({ params, principal, reply }) {
      return reply(200, await service.remove(requirePrincipal(principal), params.id));
    },
  };
}
