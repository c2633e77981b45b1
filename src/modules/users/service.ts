import type { Schemas } from '../../api-types.js';
import type { ConflictError } from '../../errors.js';
import {
  ForbiddenError,
  InvalidInputError,
  NotFoundError,
  fail,
  ok,
  type Outcome,
} from '../../errors.js';
import { decodeCursor, encodeCursor } from '../../lib/cursor.js';
import { passwordTooLong, type PasswordHasher } from '../../lib/passwords.js';
import type { Principal } from '../../lib/principal.js';
import type { AccountMail } from '../email/account-mail.js';
import type { User, UsersRepository, WithinChange } from './repository.js';

export type PublicUser = Schemas['PublicUser'];
export type PublicUserPage = Schemas['PublicUserPage'];
export type CreateUserInput = Schemas['CreateUserRequest'];
export type UpdateUserInput = Schemas['UpdateUserRequest'];

export interface UsersService {
  create(input: CreateUserInput): Promise<Outcome<User, InvalidInputError | ConflictError>>;
  list(page: {
    limit?: number | undefined;
    cursor?: string | undefined;
  }): Promise<Outcome<PublicUserPage, InvalidInputError>>;
  getProfile(id: string): Promise<Outcome<PublicUser, NotFoundError>>;
  update(
    principal: Principal,
    id: string,
    changes: UpdateUserInput,
  ): Promise<Outcome<User, ForbiddenError | NotFoundError | ConflictError>>;
  remove(principal: Principal, id: string): Promise<Outcome<User, ForbiddenError | NotFoundError>>;
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

function isOwnAccount(principal: Principal, id: string): boolean {
  return principal.userId === id.toLowerCase();
}

export function createUsersService(deps: {
  users: UsersRepository;
  passwords: PasswordHasher;
  /** A new address gets a verification link, queued in the transaction that stores it. */
  mail: Pick<AccountMail, 'sendVerification' | 'nudge'>;
}): UsersService {
  const { users, passwords, mail } = deps;
  const sendVerification: WithinChange = (tx, user) => mail.sendVerification(tx, user);
  return {
    async create({ email, username, password, firstName, lastName }) {
      const tooLong = passwordTooLong(password);
      if (tooLong) return fail(tooLong);
      // Concurrent sign-ups with one email are settled by the unique index, not by a
      // look-up first: exactly one insert wins, the other becomes a conflict.
      const passwordHash = await passwords.hash(password);
      const created = await users.create(
        { email, username, passwordHash, firstName, lastName },
        sendVerification,
      );
      if (created.ok) mail.nudge();
      return created;
    },

    async list({ limit = DEFAULT_PAGE_SIZE, cursor }) {
      const after = cursor === undefined ? null : decodeCursor(cursor);
      if (after === null && cursor !== undefined) {
        return fail(
          new InvalidInputError(
            'cursor',
            'is not a valid cursor',
            'The cursor is not one this server gave out.',
          ),
        );
      }
      // One extra row tells whether there is a next page without a count query.
      const rows = await users.list(limit + 1, after);
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      return ok({
        items: items.map(toPublicUser),
        nextCursor: rows.length > limit && last ? encodeCursor(last) : null,
      });
    },

    async getProfile(id) {
      const user = await users.findById(id);
      return user ? ok(toPublicUser(user)) : fail(new NotFoundError('User'));
    },

    async update(principal, id, changes) {
      if (!isOwnAccount(principal, id)) {
        return fail(new ForbiddenError('You can only change your own account.'));
      }
      const updated = await users.update(id, changes, sendVerification);
      if (updated?.ok && changes.email !== undefined) mail.nudge();
      return updated ?? fail(new NotFoundError('User'));
    },

    async remove(principal, id) {
      if (!isOwnAccount(principal, id)) {
        return fail(new ForbiddenError('You can only delete your own account.'));
      }
      const user = await users.delete(id);
      return user ? ok(user) : fail(new NotFoundError('User'));
    },
  };
}
