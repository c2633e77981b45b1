import type { Schemas } from '../../api-types.js';
import { users, type UserRow } from '../../db/schema/users.js';
import { isoOf, type EitherRow } from '../../db/statements.js';

export type User = Schemas['User'];
/** A public profile: no email address, no account flags. */
export type PublicUser = Schemas['PublicUser'];
/** What user.deleted tells of the account: nothing but its id and the time. */
export type DeletedUser = Schemas['DeletedUser'];

/** The columns of an account the API shows (never the password hash), for `toUser`. */
export const accountColumns = {
  id: users.id,
  email: users.email,
  username: users.username,
  firstName: users.firstName,
  lastName: users.lastName,
  isActive: users.isActive,
  emailVerified: users.emailVerified,
  role: users.role,
  createdAt: users.createdAt,
  updatedAt: users.updatedAt,
};

/** The columns of a public profile. */
export const profileColumns = {
  id: users.id,
  username: users.username,
  firstName: users.firstName,
  lastName: users.lastName,
  createdAt: users.createdAt,
};

/** An account's row, read by Drizzle or by a named statement (db/statements.ts). */
export type AccountRow = EitherRow<Pick<UserRow, keyof typeof accountColumns>>;
type ProfileRow = EitherRow<Pick<UserRow, keyof typeof profileColumns>>;

/** The one mapping from rows to the API's User. */
export function toUser(row: AccountRow): User {
  return {
    id: row.id,
    email: row.email,
    username: row.username,
    firstName: row.firstName,
    lastName: row.lastName,
    isActive: row.isActive,
    emailVerified: row.emailVerified,
    role: row.role,
    createdAt: isoOf(row.createdAt),
    updatedAt: isoOf(row.updatedAt),
  };
}

/** The one mapping from rows to the API's PublicUser. */
export function toPublicUser(row: ProfileRow): PublicUser {
  return {
    id: row.id,
    username: row.username,
    firstName: row.firstName,
    lastName: row.lastName,
    createdAt: isoOf(row.createdAt),
  };
}

/** The one mapping from a deleted account's row to user.deleted's data. */
export function toDeletedUser(row: { id: string; deletedAt: Date | string }): DeletedUser {
  return { id: row.id, deletedAt: isoOf(row.deletedAt) };
}
