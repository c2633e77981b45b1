import type { HandlerGroup } from '../../http/handler-types.js';
import { requirePrincipal } from '../../http/security.js';
import type { UsersService } from './service.js';

export type UsersOperations = 'createUser' | 'listUsers' | 'getUser' | 'updateUser' | 'deleteUser';

export function createUsersHandlers(service: UsersService): HandlerGroup<UsersOperations> {
  return {
    async createUser({ body }) {
      const user = await service.create(body);
      return { status: 201, body: user, headers: { location: `/api/users/${user.id}` } };
    },
    async listUsers({ query }) {
      return { status: 200, body: await service.list(query) };
    },
    async getUser({ params }) {
      return { status: 200, body: await service.getProfile(params.id) };
    },
    async updateUser({ params, body, principal }) {
      return { status: 200, body: await service.update(requirePrincipal(principal), params.id, body) };
    },
    async deleteUser({ params, principal }) {
      return { status: 200, body: await service.remove(requirePrincipal(principal), params.id) };
    },
  };
}
