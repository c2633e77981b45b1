import type { Schemas } from '../../api-types.js';
import type { Db } from '../../db/client.js';
import type { InvalidInputError } from '../../errors.js';
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  fail,
  ok,
  type Outcome,
} from '../../errors.js';
import type { Changes } from '../../lib/changes.js';
import { encodeCursor, positionOf, type Position } from '../../lib/cursor.js';
import { passwordTooLong, type PasswordHasher } from '../../lib/passwords.js';
import type { Principal } from '../../lib/principal.js';
import type { AccountMail } from '../email/account-mail.js';
import type { ChangeHooks, PublicUser, User, UsersRepository } from './repository.js';

export type { PublicUser };

export type PublicUserPage = Schemas['PublicUserPage'];
export type UserPage = Schemas['UserPage'];
export type CreateUserInput = Schemas['CreateUserRequest'];
export type UpdateUserInput = Schemas['UpdateUserRequest'];

/** A page request: `limit` and the `cursor` of the previous page. */
export type Page = { limit?: number | undefined; cursor?: string | undefined };

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
  remove(
    principal: Principal,
    id: string,
  ): Promise<Outcome<User, ForbiddenError | NotFoundError | ConflictError>>;
  /** Full accounts, paginated like `list`; for admins only. */
  listAccounts(
    principal: Principal,
    page: Page,
  ): Promise<Outcome<UserPage, ForbiddenError | InvalidInputError>>;
  /** A full account; for admins only. */
  getAccount(
    principal: Principal,
    id: string,
  ): Promise<Outcome<User, ForbiddenError | NotFoundError>>;
}

export const DEFAULT_PAGE_SIZE = 20;

function isOwnAccount(principal: Principal, id: string): boolean {
  return principal.userId === id.toLowerCase();
}

function isAdmin(principal: Principal): boolean {
  return principal.role === 'admin';
}

const adminsOnly = () => new ForbiddenError('Only an admin can do this.');

/** Whether these changes could take an account out of the active admins. */
function canEndAnAdmin(changes: UpdateUserInput): boolean {
  return changes.role === 'user' || changes.isActive === false;
}

/** The conflict of a change that would leave no active admin; `field` is the one at fault. */
function lastAdminConflict(action: 'demoting' | 'disabling' | 'deleting'): ConflictError {
  const field = { demoting: 'role', disabling: 'isActive', deleting: null }[action];
  return new ConflictError(
    `This is the last active admin account; make another admin before ${action} it.`,
    field,
    'would leave no active admin',
  );
}

/** Why `principal` may not make these changes to account `id`, or null when it may. */
function updateForbidden(
  principal: Principal,
  id: string,
  changes: UpdateUserInput,
): ForbiddenError | null {
  if (isAdmin(principal)) return null;
  if (!isOwnAccount(principal, id)) {
    return new ForbiddenError('You can only change your own account.');
  }
  if (changes.role !== undefined || changes.isActive !== undefined) {
    return new ForbiddenError('Only an admin can change a role or enable or disable an account.');
  }
  return null;
}

/** Up to `limit` accounts after the cursor's, oldest first, and the next page's cursor. */
async function pageOf<T extends PublicUser>(
  { limit = DEFAULT_PAGE_SIZE, cursor }: Page,
  read: (limit: number, after: Position | null) => Promise<T[]>,
): Promise<Outcome<{ items: T[]; nextCursor: string | null }, InvalidInputError>> {
  const start = positionOf(cursor);
  if (!start.ok) return start;
  const after = start.value;
  // One extra row tells whether there is a next page without a count query.
  const rows = await read(limit + 1, after);
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return ok({
    items,
    nextCursor:
      rows.length > limit && last ? encodeCursor({ at: last.createdAt, id: last.id }) : null,
  });
}

interface UsersServiceDeps {
  /** Told of every change to what readers see of an account (its profile, its posts' author). */
  changes: Changes;
  users: UsersRepository;
  passwords: PasswordHasher;
  /** A new address gets a verification link, queued in the transaction that stores it. */
  mail: Pick<AccountMail, 'sendVerification' | 'nudge'>;
  /**
   * The sessions' owner (auth), which users cannot import (auth imports users): a disabled
   * account's sessions end with it, in the same transaction, so that enabling it again does
   * not bring its old access and refresh tokens back to life.
   */
  sessions: { revokeAll(userId: string, reason: 'account-disabled', tx: Db): Promise<unknown> };
  /**
   * The posts' owner (posts), which users cannot import (posts reads users): a deleted
   * account's posts are deleted by it, in the deletion's transaction, so that each
   * published one is recorded as deleted (the foreign key's cascade would tell nobody).
   */
  posts: { deleteAllOf(tx: Db, authorId: string): Promise<unknown> };
}

/** Whether a change alters what posts show of their author, or whether they are shown. */
function altersAuthor(changes: UpdateUserInput): boolean {
  return (
    changes.username !== undefined ||
    changes.firstName !== undefined ||
    changes.lastName !== undefined ||
    changes.isActive !== undefined
  );
}

async function updateUser(
  { users, mail, changes: told }: UsersServiceDeps,
  hooks: ChangeHooks,
  principal: Principal,
  id: string,
  changes: UpdateUserInput,
): ReturnType<UsersService['update']> {
  const forbidden = updateForbidden(principal, id, changes);
  if (forbidden) return fail(forbidden);
  const updated = canEndAnAdmin(changes)
    ? await users.withActiveAdminsLocked(async (locked) => {
        if (isLastActiveAdmin(locked.activeAdminIds, id)) {
          return fail(lastAdminConflict(changes.role === 'user' ? 'demoting' : 'disabling'));
        }
        return locked.update(id, changes, hooks);
      })
    : await users.update(id, changes, hooks);
  if (updated?.ok) {
    await told.changed({ kind: 'user', id, author: altersAuthor(changes) });
    if (changes.email !== undefined) mail.nudge();
  }
  return updated ?? fail(new NotFoundError('User'));
}

export function createUsersService(deps: UsersServiceDeps): UsersService {
  const { users, passwords, mail, sessions, posts, changes } = deps;
  const hooks: ChangeHooks = {
    onNewAddress: (tx, user) => mail.sendVerification(tx, user),
    onDisabled: (tx, user) => sessions.revokeAll(user.id, 'account-disabled', tx),
  };
  return {
    async create({ email, username, password, firstName, lastName }) {
      const tooLong = passwordTooLong(password);
      if (tooLong) return fail(tooLong);
      // Concurrent sign-ups with one email are settled by the unique index, not by a
      // look-up first: exactly one insert wins, the other becomes a conflict.
      const passwordHash = await passwords.hash(password);
      const created = await users.create(
        { email, username, passwordHash, firstName, lastName },
        hooks.onNewAddress,
      );
      if (created.ok) {
        await changes.changed({ kind: 'user', id: created.value.id, author: false });
        mail.nudge();
      }
      return created;
    },

    async list(page) {
      return pageOf(page, (limit, after) => users.listProfiles(limit, after));
    },

    async listAccounts(principal, page) {
      if (!isAdmin(principal)) return fail(adminsOnly());
      return pageOf(page, (limit, after) => users.list(limit, after));
    },

    async getAccount(principal, id) {
      if (!isAdmin(principal)) return fail(adminsOnly());
      const user = await users.findById(id);
      return user ? ok(user) : fail(new NotFoundError('User'));
    },

    async getProfile(id) {
      const user = await users.findProfileById(id);
      return user ? ok(user) : fail(new NotFoundError('User'));
    },

    async update(principal, id, changes) {
      return updateUser(deps, hooks, principal, id, changes);
    },

    async remove(principal, id) {
      if (!isAdmin(principal) && !isOwnAccount(principal, id)) {
        return fail(new ForbiddenError('You can only delete your own account.'));
      }
      // Whether the account is an admin's is known only once the admins are locked.
      const removed = await users.withActiveAdminsLocked(async (locked) => {
        if (isLastActiveAdmin(locked.activeAdminIds, id)) {
          return fail(lastAdminConflict('deleting'));
        }
        const user = await locked.delete(id, (tx, userId) => posts.deleteAllOf(tx, userId));
        return user ? ok(user) : fail(new NotFoundError('User'));
      });
      // Told once committed: a reader in between would cache what is being deleted.
      if (removed.ok) await changes.changed({ kind: 'user', id, author: true });
      return removed;
    },
  };
}

/** Whether `id` is the one active admin left (ids compare in lower case, as PostgreSQL gives them). */
function isLastActiveAdmin(activeAdminIds: readonly string[], id: string): boolean {
  return activeAdminIds.length === 1 && activeAdminIds[0] === id.toLowerCase();
}
