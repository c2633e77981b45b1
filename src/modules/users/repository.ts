import { and, asc, eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { UNIQUE_VIOLATION, databaseErrorOf } from '../../db/errors.js';
import { userUniqueFields, users, type UserRole } from '../../db/schema/users.js';
import { ConflictError, fail, ok, type Outcome } from '../../errors.js';
import type { Position } from '../../lib/cursor.js';
import { createEventsRepository, type EventsRepository } from '../events/repository.js';
import { preparedReads } from './reads.js';
import {
  accountColumns,
  toDeletedUser,
  toPublicUser,
  toUser,
  type PublicUser,
  type User,
} from './rows.js';

export { toUser, type AccountRow, type PublicUser, type User } from './rows.js';

export interface NewUser {
  email: string;
  username: string;
  passwordHash: string;
  firstName?: string | null | undefined;
  lastName?: string | null | undefined;
  /** 'user' unless said otherwise. */
  role?: UserRole | undefined;
}

export interface UserChanges {
  email?: string | undefined;
  username?: string | undefined;
  firstName?: string | null | undefined;
  lastName?: string | null | undefined;
  role?: UserRole | undefined;
  isActive?: boolean | undefined;
}

/**
 * Work done in the transaction of a change, with the account as it now is (to queue the
 * email the change causes, say): it commits with the change, or neither does.
 */
export type WithinChange = (tx: Db, user: User) => Promise<unknown>;

/**
 * Work done in the transaction of an account's deletion, before its row goes (the posts'
 * owner deletes the account's posts itself, to record the public ones' deletion).
 */
export type BeforeDeletion = (tx: Db, userId: string) => Promise<unknown>;

/** What an update does in its own transaction besides the change. */
export interface ChangeHooks {
  /** When the email address changes (not merely its letter case). */
  onNewAddress?: WithinChange | undefined;
  /** When the update disables the account. */
  onDisabled?: WithinChange | undefined;
}

export interface Credentials {
  user: User;
  passwordHash: string;
}

/**
 * The owner of `users` (src/db/owners.ts): the only code that writes it. Other modules
 * change an account through it (the functions below the factory take their transaction);
 * posts and sessions read public columns in their joins. It answers in the API's shape
 * (`User`): the password hash leaves it only through findCredentials*, for the checks.
 */
export interface UsersRepository {
  create(data: NewUser, within?: WithinChange): Promise<Outcome<User, ConflictError>>;
  findById(id: string): Promise<User | null>;
  /** The public profile alone, read without the columns it does not show. */
  findProfileById(id: string): Promise<PublicUser | null>;
  findCredentialsByEmail(email: string): Promise<Credentials | null>;
  /** For a check of the current password (a password change). */
  findCredentialsById(id: string): Promise<Credentials | null>;
  /** Null when there is no such user. `hooks` run in the update's transaction. */
  update(
    id: string,
    changes: UserChanges,
    hooks?: ChangeHooks,
  ): Promise<Outcome<User, ConflictError> | null>;
  /** Records user.deleted with it; `before` runs first, in the same transaction. */
  delete(id: string, before?: BeforeDeletion): Promise<User | null>;
  /** Replaces a password hash (a rehash at a higher cost, for one): see writePasswordHash. */
  setPasswordHash(id: string, passwordHash: string): Promise<void>;
  /** Up to `limit` users after `after`, oldest first. */
  list(limit: number, after: Position | null): Promise<User[]>;
  /** As `list`, public profiles only. */
  listProfiles(limit: number, after: Position | null): Promise<PublicUser[]>;
  /** The account with this email address, in any letter case. */
  findByEmail(email: string): Promise<User | null>;
  /**
   * Makes the account an admin if it still uses this address (in any letter case) and the
   * address is verified, in one statement; null (and nothing changed) otherwise.
   */
  promoteVerifiedToAdmin(id: string, email: string): Promise<User | null>;
  /**
   * Runs `work` in one transaction that first locks the rows of every active admin (in id
   * order, so two such transactions cannot deadlock), and commits when it returns. Until
   * then no other such transaction can demote, disable or delete one of them: a change
   * checked against `activeAdminIds` and made through `scope` cannot race another one into
   * leaving no active admin.
   */
  withActiveAdminsLocked<T>(work: (scope: AdminsLockedScope) => Promise<T>): Promise<T>;
}

export interface AdminsLockedScope {
  /** The ids of the active admins, as committed when their rows were locked. */
  readonly activeAdminIds: readonly string[];
  update: UsersRepository['update'];
  delete: UsersRepository['delete'];
}

const fieldNames = { email: 'email address', username: 'username' } as const;

/** A unique-index violation becomes a conflict that names the field; anything else goes on. */
function conflictOf(error: unknown): ConflictError {
  const cause = databaseErrorOf(error);
  if (cause?.code !== UNIQUE_VIOLATION) throw error;
  const field = cause.constraint ? userUniqueFields[cause.constraint] : undefined;
  return field
    ? new ConflictError(`This ${fieldNames[field]} is already taken.`, field)
    : new ConflictError('This value is already taken.');
}

async function updateIn(
  db: Db,
  id: string,
  changes: UserChanges,
  { onNewAddress, onDisabled }: ChangeHooks = {},
): Promise<Outcome<User, ConflictError> | null> {
  try {
    const newAddress = changes.email !== undefined && onNewAddress !== undefined;
    const disabling = changes.isActive === false && onDisabled !== undefined;
    // Without a hook to run there is nothing to do in the same transaction.
    const user =
      !newAddress && !disabling
        ? await updateRow(db, id, changes)
        : await db.transaction(async (tx) => {
            const [before] = await tx
              .select({ email: users.email })
              .from(users)
              .where(eq(users.id, id))
              .for('update');
            const updated = await updateRow(tx, id, changes);
            if (!updated) return null;
            if (newAddress && before?.email.toLowerCase() !== updated.email.toLowerCase()) {
              await onNewAddress(tx, updated);
            }
            if (disabling) await onDisabled(tx, updated);
            return updated;
          });
    return user ? ok(user) : null;
  } catch (error) {
    return fail(conflictOf(error));
  }
}

/** The deletion and its event; `tx` must be a transaction. */
async function deleteIn(
  tx: Db,
  events: EventsRepository,
  id: string,
  before?: BeforeDeletion,
): Promise<User | null> {
  await before?.(tx, id);
  // deletedAt: the transaction's time, as the event's occurred_at (milliseconds), read as
  // the column is (Drizzle hands a bare expression's timestamp over as PostgreSQL's text).
  const [row] = await tx
    .delete(users)
    .where(eq(users.id, id))
    .returning({
      ...accountColumns,
      deletedAt: sql<Date>`now()::timestamptz(3)`.mapWith(users.updatedAt),
    });
  if (!row) return null;
  await events.record(tx, { type: 'user.deleted', subjectId: row.id, data: toDeletedUser(row) });
  return toUser(row);
}

/**
 * `events`: where the account's creation and deletion are recorded, in their transaction
 * (app.ts passes one that checks each payload against the spec in development and tests).
 */
export function createUsersRepository(
  db: Db,
  events: EventsRepository = createEventsRepository(),
): UsersRepository {
  const reads = preparedReads(db);
  return {
    create: (data, within) => createIn(db, events, data, within),
    async findById(id) {
      const [row] = await reads.byId.execute({ id });
      return row ? toUser(row) : null;
    },
    async findProfileById(id) {
      const [row] = await reads.profileById({ id });
      return row ? toPublicUser(row) : null;
    },
    async findCredentialsByEmail(email) {
      const [row] = await reads.credentialsByEmail.execute({ email });
      return row ? { user: toUser(row), passwordHash: row.passwordHash } : null;
    },
    async findCredentialsById(id) {
      const [row] = await reads.credentialsById.execute({ id });
      return row ? { user: toUser(row), passwordHash: row.passwordHash } : null;
    },
    update: (id, changes, hooks) => updateIn(db, id, changes, hooks),
    async setPasswordHash(id, passwordHash) {
      await writePasswordHash(db, id, passwordHash);
    },
    delete: (id, before) => db.transaction((tx) => deleteIn(tx, events, id, before)),
    async list(limit, start) {
      const { first, after } = reads.accountPages;
      const rows = start
        ? await after.execute({ limit, createdAt: start.at, id: start.id })
        : await first.execute({ limit });
      return rows.map(toUser);
    },
    async listProfiles(limit, start) {
      const { first, after } = reads.profilePages;
      const rows = start
        ? await after.execute({ limit, createdAt: start.at, id: start.id })
        : await first.execute({ limit });
      return rows.map(toPublicUser);
    },
    async findByEmail(email) {
      const [row] = await reads.byEmail.execute({ email });
      return row ? toUser(row) : null;
    },
    promoteVerifiedToAdmin: (id, email) => promoteIn(db, id, email),
    withActiveAdminsLocked(work) {
      return db.transaction(async (tx) => {
        // FOR UPDATE waits for a concurrent change to these rows to commit, then sees the
        // rows as that change left them: an admin demoted, disabled or deleted meanwhile is
        // no longer counted. (One made an admin meanwhile may be missed: that only makes
        // the count err on the safe side.)
        const admins = await tx
          .select({ id: users.id })
          .from(users)
          .where(and(eq(users.role, 'admin'), eq(users.isActive, true)))
          .orderBy(asc(users.id))
          .for('update');
        return work({
          activeAdminIds: admins.map((admin) => admin.id),
          update: (id, changes, hooks) => updateIn(tx, id, changes, hooks),
          delete: (id, before) => deleteIn(tx, events, id, before),
        });
      });
    },
  };
}

async function createIn(
  db: Db,
  events: EventsRepository,
  data: NewUser,
  within?: WithinChange,
): Promise<Outcome<User, ConflictError>> {
  try {
    const user = await db.transaction(async (tx) => {
      const [row] = await tx
        .insert(users)
        .values({
          email: data.email,
          username: data.username,
          passwordHash: data.passwordHash,
          firstName: data.firstName ?? null,
          lastName: data.lastName ?? null,
          role: data.role ?? 'user',
        })
        .returning(accountColumns);
      const created = toUser(row!);
      await events.record(tx, { type: 'user.created', subjectId: created.id, data: created });
      await within?.(tx, created);
      return created;
    });
    return ok(user);
  } catch (error) {
    return fail(conflictOf(error));
  }
}

async function promoteIn(db: Db, id: string, email: string): Promise<User | null> {
  const [row] = await db
    .update(users)
    .set({ role: 'admin', updatedAt: sql`now()` })
    .where(
      and(
        eq(users.id, id),
        eq(sql`lower(${users.email})`, sql`lower(${email})`),
        eq(users.emailVerified, true),
      ),
    )
    .returning(accountColumns);
  return row ? toUser(row) : null;
}

/** The update itself, on the database or in a transaction; null when there is no such user. */
async function updateRow(db: Db, id: string, changes: UserChanges): Promise<User | null> {
  // Drizzle leaves out the undefined ones: only the fields sent change, and only
  // these columns can, whatever else the caller's object holds.
  const [row] = await db
    .update(users)
    .set({
      email: changes.email,
      username: changes.username,
      firstName: changes.firstName,
      lastName: changes.lastName,
      role: changes.role,
      isActive: changes.isActive,
      // A new address is not verified yet; the same one in other letter case still is.
      emailVerified:
        changes.email === undefined
          ? undefined
          : sql`${users.emailVerified} and lower(${users.email}) = lower(${changes.email})`,
      updatedAt: sql`now()`,
    })
    .where(eq(users.id, id))
    .returning(accountColumns);
  return row ? toUser(row) : null;
}

// What other modules change in an account, each in the transaction they pass (`db` may be
// one): the account's rows are written here only.

/**
 * Replaces the password hash (a rehash, a change, a reset) and stamps the change; the
 * account's address, or null when there is no such account.
 */
export async function writePasswordHash(
  db: Db,
  id: string,
  passwordHash: string,
): Promise<{ email: string } | null> {
  const [row] = await db
    .update(users)
    .set({ passwordHash, updatedAt: sql`now()` })
    .where(eq(users.id, id))
    .returning({ email: users.email });
  return row ?? null;
}

/** An account as the email flows need it. */
export interface AccountRecord {
  id: string;
  email: string;
  emailVerified: boolean;
}

/**
 * Locks the account (FOR UPDATE, until the transaction ends) with this id, or the active
 * one that uses this address in any letter case, and reads it; null when there is none.
 */
export async function lockAccount(
  tx: Db,
  by: { id: string } | { activeEmail: string },
): Promise<AccountRecord | null> {
  const [account] = await tx
    .select({ id: users.id, email: users.email, emailVerified: users.emailVerified })
    .from(users)
    .where(
      'id' in by
        ? eq(users.id, by.id)
        : and(
            eq(sql`lower(${users.email})`, sql`lower(${by.activeEmail})`),
            eq(users.isActive, true),
          ),
    )
    .limit(1)
    .for('update');
  return account ?? null;
}

/** Marks the address verified if the account still uses `address`; says whether it did. */
export async function markEmailVerified(tx: Db, id: string, address: string): Promise<boolean> {
  const [user] = await tx
    .update(users)
    .set({ emailVerified: true, updatedAt: sql`now()` })
    .where(and(eq(users.id, id), eq(sql`lower(${users.email})`, sql`lower(${address})`)))
    .returning({ id: users.id });
  return user !== undefined;
}

/** The addresses of the active admins, to tell them of what needs them (a disabled webhook). */
export async function activeAdminAddresses(db: Db): Promise<string[]> {
  const rows = await db
    .select({ email: users.email })
    .from(users)
    .where(and(eq(users.role, 'admin'), eq(users.isActive, true)));
  return rows.map((row) => row.email);
}
