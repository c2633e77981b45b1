import { and, asc, eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { userUniqueFields, users, type UserRole, type UserRow } from '../../db/schema/users.js';
import type { Schemas } from '../../api-types.js';
import { UNIQUE_VIOLATION, databaseErrorOf } from '../../db/errors.js';
import { revokeUserSessions } from '../../db/sessions.js';
import { isoOf, namedStatement } from '../../db/statements.js';
import { ConflictError, fail, ok, type Outcome } from '../../errors.js';
import type { Position } from '../../lib/cursor.js';

export type User = Schemas['User'];
/** A public profile: no email address, no account flags. */
export type PublicUser = Schemas['PublicUser'];

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

export interface Credentials {
  user: User;
  passwordHash: string;
}

/**
 * The only code that sees rows of `users`. It answers in the API's shape (`User`): the
 * password hash leaves it only through findCredentials*, for the password checks.
 */
export interface UsersRepository {
  create(data: NewUser, within?: WithinChange): Promise<Outcome<User, ConflictError>>;
  findById(id: string): Promise<User | null>;
  /** The public profile alone, read without the columns it does not show. */
  findProfileById(id: string): Promise<PublicUser | null>;
  findCredentialsByEmail(email: string): Promise<Credentials | null>;
  /** For a check of the current password (a password change). */
  findCredentialsById(id: string): Promise<Credentials | null>;
  /**
   * Null when there is no such user. `onNewAddress` runs in the update's transaction when
   * the email address changes (not merely its letter case).
   */
  update(
    id: string,
    changes: UserChanges,
    onNewAddress?: WithinChange,
  ): Promise<Outcome<User, ConflictError> | null>;
  delete(id: string): Promise<User | null>;
  /** Replaces a password hash (a rehash at a higher cost, for one). */
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
const profileColumns = {
  id: users.id,
  username: users.username,
  firstName: users.firstName,
  lastName: users.lastName,
  createdAt: users.createdAt,
};

export /** Timestamps as Dates (Drizzle) or as the API's strings (src/db/statements.ts). */
type Timestamped<Row> = Omit<Row, 'createdAt' | 'updatedAt'> & {
  createdAt: Date | string;
  updatedAt: Date | string;
};
export type AccountRow = Timestamped<Omit<UserRow, 'passwordHash'>>;
type ProfileRow = Omit<Pick<UserRow, keyof typeof profileColumns>, 'createdAt'> & {
  createdAt: Date | string;
};

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

function toPublicUser(row: ProfileRow): PublicUser {
  return {
    id: row.id,
    username: row.username,
    firstName: row.firstName,
    lastName: row.lastName,
    createdAt: isoOf(row.createdAt),
  };
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
  onNewAddress?: WithinChange,
): Promise<Outcome<User, ConflictError> | null> {
  try {
    const newAddress = changes.email !== undefined && onNewAddress !== undefined;
    const disabling = changes.isActive === false;
    // Without a new address or a deactivation there is nothing to do in the same transaction.
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
            // A disabled account's sessions end with it, so that enabling it again does not
            // bring its old access and refresh tokens back to life.
            if (disabling) await revokeUserSessions(tx, id);
            return updated;
          });
    return user ? ok(user) : null;
  } catch (error) {
    return fail(conflictOf(error));
  }
}

async function deleteIn(db: Db, id: string): Promise<User | null> {
  const [row] = await db.delete(users).where(eq(users.id, id)).returning(accountColumns);
  return row ? toUser(row) : null;
}

export function createUsersRepository(db: Db): UsersRepository {
  // Named prepared statements for the reads on every request's path: PostgreSQL plans
  // them once per connection instead of on every call.
  // Each reads only the columns its answer shows; the password hash only for the checks.
  const byId = db
    .select(accountColumns)
    .from(users)
    .where(eq(users.id, sql.placeholder('id')))
    .limit(1)
    .prepare('users_by_id');
  const credentialsById = db
    .select({ ...accountColumns, passwordHash: users.passwordHash })
    .from(users)
    .where(eq(users.id, sql.placeholder('id')))
    .limit(1)
    .prepare('users_credentials_by_id');
  // getUser, the most frequent read of users: a statement of its own (src/db/statements.ts).
  const profileById = namedStatement<ProfileRow>(
    db,
    'users_profile_by_id',
    `select id, username, first_name as "firstName", last_name as "lastName",
       created_at as "createdAt"
     from users where id = $1`,
  );
  const emailMatches = eq(sql`lower(${users.email})`, sql`lower(${sql.placeholder('email')})`);
  const byEmail = db
    .select(accountColumns)
    .from(users)
    .where(emailMatches)
    .limit(1)
    .prepare('users_by_email');
  const credentialsByEmail = db
    .select({ ...accountColumns, passwordHash: users.passwordHash })
    .from(users)
    .where(emailMatches)
    .limit(1)
    .prepare('users_credentials_by_email');
  // A row comparison walks the (created_at, id) index: page 1000 costs what page 1 does.
  const after = sql`(${users.createdAt}, ${users.id}) > (${sql.placeholder('createdAt')}::timestamptz, ${sql.placeholder('id')}::uuid)`;
  const byAge = [asc(users.createdAt), asc(users.id)];
  const accountPages = {
    first: db
      .select(accountColumns)
      .from(users)
      .orderBy(...byAge)
      .limit(sql.placeholder('limit'))
      .prepare('users_first_page'),
    after: db
      .select(accountColumns)
      .from(users)
      .where(after)
      .orderBy(...byAge)
      .limit(sql.placeholder('limit'))
      .prepare('users_page_after'),
  };
  const profilePages = {
    first: db
      .select(profileColumns)
      .from(users)
      .orderBy(...byAge)
      .limit(sql.placeholder('limit'))
      .prepare('users_profiles_first_page'),
    after: db
      .select(profileColumns)
      .from(users)
      .where(after)
      .orderBy(...byAge)
      .limit(sql.placeholder('limit'))
      .prepare('users_profiles_page_after'),
  };

  return {
    async create(data, within) {
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
          await within?.(tx, created);
          return created;
        });
        return ok(user);
      } catch (error) {
        return fail(conflictOf(error));
      }
    },

    async findById(id) {
      const [row] = await byId.execute({ id });
      return row ? toUser(row) : null;
    },

    async findProfileById(id) {
      const [row] = await profileById([id]);
      return row ? toPublicUser(row) : null;
    },

    async findCredentialsByEmail(email) {
      const [row] = await credentialsByEmail.execute({ email });
      return row ? { user: toUser(row), passwordHash: row.passwordHash } : null;
    },

    async findCredentialsById(id) {
      const [row] = await credentialsById.execute({ id });
      return row ? { user: toUser(row), passwordHash: row.passwordHash } : null;
    },

    update: (id, changes, onNewAddress) => updateIn(db, id, changes, onNewAddress),

    async setPasswordHash(id, passwordHash) {
      await db.update(users).set({ passwordHash }).where(eq(users.id, id));
    },

    delete: (id) => deleteIn(db, id),

    async list(limit, start) {
      const rows = start
        ? await accountPages.after.execute({ limit, createdAt: start.at, id: start.id })
        : await accountPages.first.execute({ limit });
      return rows.map(toUser);
    },

    async listProfiles(limit, start) {
      const rows = start
        ? await profilePages.after.execute({ limit, createdAt: start.at, id: start.id })
        : await profilePages.first.execute({ limit });
      return rows.map(toPublicUser);
    },

    async findByEmail(email) {
      const [row] = await byEmail.execute({ email });
      return row ? toUser(row) : null;
    },

    async promoteVerifiedToAdmin(id, email) {
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
    },

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
          update: (id, changes, onNewAddress) => updateIn(tx, id, changes, onNewAddress),
          delete: (id) => deleteIn(tx, id),
        });
      });
    },
  };
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
