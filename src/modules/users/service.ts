import { ForbiddenError, NotFoundError } from '../../http/errors.js';
import type { Principal, Schemas } from '../../http/handler-types.js';
import { decodeCursor, encodeCursor } from '../../lib/cursor.js';
import { assertPasswordFits, type PasswordHasher } from '../auth/passwords.js';
import type { User, UsersRepository } from './repository.js';

export type PublicUser = Schemas['PublicUser'];
export type PublicUserPage = Schemas['PublicUserPage'];
export type CreateUserInput = Schemas['CreateUserRequest'];
export type UpdateUserInput = Schemas['UpdateUserRequest'];

export interface UsersService {
  create(input: CreateUserInput): Promise<User>;
  list(page: { limit?: number | undefined; cursor?: string | undefined }): Promise<PublicUserPage>;
  getProfile(id: string): Promise<PublicUser>;
  update(principal: Principal, id: string, changes: UpdateUserInput): Promise<User>;
  remove(principal: Principal, id: string): Promise<User>;
}

export const DEFAULT_PAGE_SIZE = 20;

/** A public profile: no email address, no account flags. */
export function toPublicUser(user: User): PublicUser {
  return {
    id: user.id,
    username: user.username,
    firstName: user.firstName,
    lastName: user.lastName,
    createdAt: user.createdAt,
  };
}

function assertOwnAccount(principal: Principal, id: string, action: string): void {
  if (principal.userId !== id.toLowerCase()) {
    throw new ForbiddenError(`You can only ${action} your own account.`);
  }
}

export function createUsersService(deps: {
  users: UsersRepository;
  passwords: PasswordHasher;
}): UsersService {
  const { users, passwords } = deps;
  return {
    async create({ password, ...profile }) {
      assertPasswordFits(password);
      // Concurrent sign-ups with one email are settled by the unique index, not by a
      // look-up first: exactly one insert wins, the other becomes a 409.
      return users.create({ ...profile, passwordHash: await passwords.hash(password) });
    },

    async list({ limit = DEFAULT_PAGE_SIZE, cursor }) {
      const after = cursor === undefined ? null : decodeCursor(cursor);
      // One extra row tells whether there is a next page without a count query.
      const rows = await users.list(limit + 1, after);
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      return {
        items: items.map(toPublicUser),
        nextCursor: rows.length > limit && last ? encodeCursor(last) : null,
      };
    },

    async getProfile(id) {
      const user = await users.findById(id);
      if (!user) throw new NotFoundError('User');
      return toPublicUser(user);
    },

    async update(principal, id, changes) {
      assertOwnAccount(principal, id, 'change');
      const user = await users.update(id, changes);
      if (!user) throw new NotFoundError('User');
      return user;
    },

    async remove(principal, id) {
      assertOwnAccount(principal, id, 'delete');
      const user = await users.delete(id);
      if (!user) throw new NotFoundError('User');
      return user;
    },
  };
}
