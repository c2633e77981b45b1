import {
  and,
  asc,
  desc,
  eq,
  gt,
  inArray,
  isNull,
  ne,
  sql,
  type Placeholder,
  type SQL,
} from 'drizzle-orm';
import type { Schemas } from '../../api-types.js';
import type { Db } from '../../db/client.js';
import { databaseErrorOf } from '../../db/errors.js';
import { refreshTokens, sessions } from '../../db/schema/auth.js';
import { users } from '../../db/schema/users.js';
import { lockOpenSessions, revokeUserSessions } from '../../db/sessions.js';
import { namedStatement } from '../../db/statements.js';
import { toUser, type AccountRow, type User } from '../users/repository.js';

/** Why a session cannot be used: ended by someone, or by one of its limits. */
export type SessionEnd = 'revoked' | 'expired' | 'idle';

/** The per-request check of an access token's account and session. */
export type SessionCheck =
  | { status: 'live'; user: User }
  | { status: 'account-deleted' | 'account-disabled' | 'session-unknown' }
  | { status: `session-${SessionEnd}` };

/** What a refresh token is exchanged for, or why it is not. */
export type Rotation =
  | {
      status: 'rotated';
      userId: string;
      role: Schemas['Role'];
      sessionId: string;
      /** The session's absolute end, as an RFC 3339 string. */
      expiresAt: string;
    }
  | { status: 'unknown-token' | 'reused' | 'account-disabled' | `session-${SessionEnd}` };

export interface NewSession {
  userId: string;
  userAgent: string | null;
  ipAddress: string | null;
  /** The SHA-256 of the session's first refresh token. */
  refreshTokenHash: string;
}

export interface StartedSession {
  sessionId: string;
  expiresAt: string;
}

export interface SessionRecord {
  id: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  userAgent: string | null;
  ipAddress: string | null;
}

export interface SessionLimits {
  /** A session's absolute lifetime, from its login. */
  refreshTokenTtlSeconds: number;
  /** A session not refreshed for this long is over. */
  idleTimeoutSeconds: number;
  /** How long after its exchange a refresh token may be presented again (a retry). */
  reuseGraceSeconds: number;
}

/**
 * The only code that sees rows of `sessions` and `refresh_tokens`. Times are compared
 * with the database's clock (`now()`), the one every row was stamped with.
 */
export interface SessionsRepository {
  /** A new session with its first refresh token; null when the account no longer exists. */
  create(data: NewSession): Promise<StartedSession | null>;
  /** The account of an access token, if the session `sessionId` is its and is live. */
  check(userId: string, sessionId: string): Promise<SessionCheck>;
  /**
   * Exchanges the refresh token whose hash is `presentedHash` for one whose hash is
   * `successorHash`, by the rotation rules (see the implementation).
   */
  rotate(presentedHash: string, successorHash: string): Promise<Rotation>;
  /** The user's live sessions, newest first. */
  listLive(userId: string): Promise<SessionRecord[]>;
  /** Ends one live session of the user; false when the user has no such live session. */
  revoke(userId: string, sessionId: string): Promise<boolean>;
  /** Ends every session of the user, except `exceptSessionId` when given. */
  revokeAll(userId: string, exceptSessionId?: string | null): Promise<number>;
  /**
   * In one transaction: the new password hash, every other session of the user ended, and
   * the session's refresh tokens replaced by one whose hash is `refreshTokenHash`. Null
   * when the session is no longer live (nothing changes then).
   */
  changePassword(change: {
    userId: string;
    sessionId: string;
    passwordHash: string;
    refreshTokenHash: string;
  }): Promise<StartedSession | null>;
}

const FOREIGN_KEY_VIOLATION = '23503';

/**
 * The most live sessions an account has (SessionList's maxItems in the spec): a login past
 * them ends the least recently used one.
 */
export const MAX_LIVE_SESSIONS = 100;

/** The first key of the advisory locks that order an account's logins (the second: its id). */
const LOGIN_LOCK_SPACE = 0x5e55;

/** The presented refresh token as rotate's exchange statement reads it. */
interface ExchangeRow {
  id: string;
  used: boolean;
  revoked: boolean;
  replaced_by: string | null;
  in_grace: boolean;
  /** Whether the statement exchanged it (it was unused and not revoked). */
  exchanged: boolean;
}

const seconds = (value: Placeholder | number) => sql`${value}::integer * interval '1 second'`;

/** Why a session (a row of the query) is not usable, or 'live'. */
function stateOf(idleSeconds: Placeholder | number) {
  return sql<SessionEnd | 'live'>`case
    when ${sessions.revokedAt} is not null then 'revoked'
    when ${sessions.expiresAt} <= now() then 'expired'
    when ${sessions.lastUsedAt} <= now() - ${seconds(idleSeconds)} then 'idle'
    else 'live' end`;
}

function isLive(idleSeconds: number): SQL {
  return and(
    isNull(sessions.revokedAt),
    gt(sessions.expiresAt, sql`now()`),
    gt(sessions.lastUsedAt, sql`now() - ${seconds(idleSeconds)}`),
  )!;
}

export function toSessionRecord(row: typeof sessions.$inferSelect): SessionRecord {
  return {
    id: row.id,
    createdAt: row.createdAt.toISOString(),
    lastUsedAt: row.lastUsedAt.toISOString(),
    expiresAt: row.expiresAt.toISOString(),
    userAgent: row.userAgent,
    ipAddress: row.ipAddress,
  };
}

export function createSessionsRepository(db: Db, limits: SessionLimits): SessionsRepository {
  const { idleTimeoutSeconds, reuseGraceSeconds, refreshTokenTtlSeconds } = limits;

  // Every secured request runs this: one statement, by primary key on both tables, that
  // tells a deleted account, a disabled one and an ended session apart. Written out and
  // sent by name (src/db/statements.ts); the case is stateOf's.
  const check = namedStatement<AccountRow & { state: SessionEnd | 'live' | 'unknown' }>(
    db,
    'session_check',
    `select u.id, u.email, u.username, u.first_name as "firstName",
       u.last_name as "lastName", u.is_active as "isActive",
       u.email_verified as "emailVerified", u.role, u.created_at as "createdAt",
       u.updated_at as "updatedAt",
       case when s.id is null then 'unknown'
         when s.revoked_at is not null then 'revoked'
         when s.expires_at <= now() then 'expired'
         when s.last_used_at <= now() - $3::integer * interval '1 second' then 'idle'
         else 'live' end as state
     from users u left join sessions s on s.id = $2 and s.user_id = u.id
     where u.id = $1`,
  );

  /** Ends one session as a whole (its refresh tokens die with it). */
  const endSession = (tx: Db, sessionId: string) =>
    tx
      .update(sessions)
      .set({ revokedAt: sql`now()` })
      .where(and(eq(sessions.id, sessionId), isNull(sessions.revokedAt)));

  const insertToken = async (tx: Db, sessionId: string, tokenHash: string) => {
    const [row] = await tx
      .insert(refreshTokens)
      .values({ sessionId, tokenHash })
      .returning({ id: refreshTokens.id });
    return row!.id;
  };

  /**
   * Ends the live sessions of the user past the MAX_LIVE_SESSIONS - 1 most recently used
   * other than `newSessionId`. They are locked in the order of their ids first, as every
   * change to several sessions of a user locks them (lockOpenSessions), so that this and a
   * logout-all wait for each other instead of deadlocking.
   */
  const endLeastRecentlyUsed = (tx: Db, userId: string, newSessionId: string) => {
    const overflow = tx
      .select({ id: sessions.id })
      .from(sessions)
      .where(
        and(eq(sessions.userId, userId), ne(sessions.id, newSessionId), isLive(idleTimeoutSeconds)),
      )
      .orderBy(desc(sessions.lastUsedAt), desc(sessions.id))
      .offset(MAX_LIVE_SESSIONS - 1);
    const locked = tx
      .select({ id: sessions.id })
      .from(sessions)
      .where(inArray(sessions.id, overflow))
      .orderBy(asc(sessions.id))
      .for('update');
    return tx
      .update(sessions)
      .set({ revokedAt: sql`now()` })
      .where(inArray(sessions.id, locked));
  };

  return {
    async create({ userId, userAgent, ipAddress, refreshTokenHash }) {
      try {
        return await db.transaction(async (tx) => {
          // The account's logins one at a time (until commit), so that two at once cannot
          // both leave MAX_LIVE_SESSIONS others live: each sees the one before it.
          await tx.execute(
            sql`select pg_advisory_xact_lock(${LOGIN_LOCK_SPACE}, hashtext(${userId}))`,
          );
          const [session] = await tx
            .insert(sessions)
            .values({
              userId,
              userAgent,
              ipAddress,
              expiresAt: sql`now() + ${seconds(refreshTokenTtlSeconds)}`,
            })
            .returning({ id: sessions.id, expiresAt: sessions.expiresAt });
          await insertToken(tx, session!.id, refreshTokenHash);
          await endLeastRecentlyUsed(tx, userId, session!.id);
          return { sessionId: session!.id, expiresAt: session!.expiresAt.toISOString() };
        });
      } catch (error) {
        // The account was deleted between the password check and now.
        if (databaseErrorOf(error)?.code === FOREIGN_KEY_VIOLATION) return null;
        throw error;
      }
    },

    async check(userId, sessionId) {
      const [row] = await check([userId, sessionId, idleTimeoutSeconds]);
      if (!row) return { status: 'account-deleted' };
      if (!row.isActive) return { status: 'account-disabled' };
      if (row.state === 'live') return { status: 'live', user: toUser(row) };
      return { status: `session-${row.state}` };
    },

    /**
     * Refresh-token rotation (RFC 9700 §4.14.2): a token works once; its successor is
     * recorded in `replaced_by`. Presenting a used token again means two parties hold it,
     * so the whole session (the family) ends, unless it is a retry within the grace period
     * of a token whose successor is still unused: that successor is then revoked and a new
     * one replaces it, so that a session never has two live refresh tokens.
     *
     * Every change to a session's tokens is made holding the session's row lock, taken
     * first: concurrent exchanges of one token (or of two tokens of one session) run one
     * after the other, each reading what the previous one committed.
     */
    async rotate(presentedHash, successorHash) {
      return db.transaction(async (tx): Promise<Rotation> => {
        // The session of the presented token, locked: found and locked in one statement.
        const [session] = await tx
          .select({
            id: sessions.id,
            userId: sessions.userId,
            expiresAt: sessions.expiresAt,
            state: stateOf(idleTimeoutSeconds),
            isActive: users.isActive,
            role: users.role,
          })
          .from(sessions)
          .innerJoin(users, eq(users.id, sessions.userId))
          .where(
            eq(
              sessions.id,
              sql`(select ${refreshTokens.sessionId} from ${refreshTokens}
                    where ${refreshTokens.tokenHash} = ${presentedHash})`,
            ),
          )
          .for('update', { of: sessions });
        // No such token, or gone meanwhile: the account was deleted (its sessions with it).
        if (!session) return { status: 'unknown-token' };
        if (!session.isActive) return { status: 'account-disabled' };
        if (session.state !== 'live') return { status: `session-${session.state}` };

        // The token, read (in a statement that begins after the lock is held, so it sees
        // what an exchange that held it before committed) and, when it is unused and not
        // revoked, the usual case, exchanged in the same statement: its successor
        // inserted, the token marked used and replaced by it, the session touched.
        const exchange: unknown = await tx.execute(sql`
          with token as (
            select id, used_at is not null as used, revoked_at is not null as revoked,
                   replaced_by,
                   coalesce(used_at > now() - ${seconds(reuseGraceSeconds)}, false) as in_grace
              from refresh_tokens
             where token_hash = ${presentedHash}
               for update
          ),
          successor as (
            insert into refresh_tokens (session_id, token_hash)
            select ${session.id}::uuid, ${successorHash} from token
             where not token.used and not token.revoked
            returning id
          ),
          exchanged as (
            update refresh_tokens set used_at = now(), replaced_by = successor.id
              from token, successor
             where refresh_tokens.id = token.id
          ),
          touched as (
            update sessions set last_used_at = now()
             where id = ${session.id}::uuid and exists (select 1 from successor)
          )
          select token.id, token.used, token.revoked, token.replaced_by, token.in_grace,
                 exists (select 1 from successor) as exchanged
            from token`);
        const [token] = (exchange as { rows: ExchangeRow[] }).rows;
        if (!token) return { status: 'unknown-token' };

        const rotated: Rotation = {
          status: 'rotated',
          userId: session.userId,
          role: session.role,
          sessionId: session.id,
          expiresAt: session.expiresAt.toISOString(),
        };
        if (token.exchanged) return rotated;

        const replay = async (): Promise<Rotation> => {
          await endSession(tx, session.id);
          return { status: 'reused' };
        };

        if (token.revoked) {
          // Replaced by a retry, or by a password change, without being exchanged: whoever
          // presents it is not the holder of the session's current token.
          return replay();
        }
        // Used before: a retry within the grace period of a token whose successor is still
        // unused gets a new successor in its place; anything else is a replay.
        if (!token.in_grace || token.replaced_by === null) return replay();
        const [successor] = await tx
          .select({ usedAt: refreshTokens.usedAt, revokedAt: refreshTokens.revokedAt })
          .from(refreshTokens)
          .where(eq(refreshTokens.id, token.replaced_by));
        // A successor already exchanged (or otherwise dead): the retry is a replay.
        if (!successor || successor.usedAt !== null || successor.revokedAt !== null) {
          return replay();
        }
        await tx
          .update(refreshTokens)
          .set({ revokedAt: sql`now()` })
          .where(eq(refreshTokens.id, token.replaced_by));
        const successorId = await insertToken(tx, session.id, successorHash);
        await tx
          .update(refreshTokens)
          .set({ replacedBy: successorId })
          .where(eq(refreshTokens.id, token.id));
        await tx
          .update(sessions)
          .set({ lastUsedAt: sql`now()` })
          .where(eq(sessions.id, session.id));
        return rotated;
      });
    },

    async listLive(userId) {
      const rows = await db
        .select()
        .from(sessions)
        .where(and(eq(sessions.userId, userId), isLive(idleTimeoutSeconds)))
        .orderBy(desc(sessions.createdAt), desc(sessions.id))
        // There are no more (create); should there ever be, the list stays in its bound.
        .limit(MAX_LIVE_SESSIONS);
      return rows.map(toSessionRecord);
    },

    async revoke(userId, sessionId) {
      const ended = await db
        .update(sessions)
        .set({ revokedAt: sql`now()` })
        .where(
          and(eq(sessions.id, sessionId), eq(sessions.userId, userId), isLive(idleTimeoutSeconds)),
        )
        .returning({ id: sessions.id });
      return ended.length > 0;
    },

    revokeAll(userId, exceptSessionId = null) {
      return revokeUserSessions(db, userId, exceptSessionId);
    },

    async changePassword({ userId, sessionId, passwordHash, refreshTokenHash }) {
      return db.transaction(async (tx) => {
        await lockOpenSessions(tx, userId);
        const [session] = await tx
          .select({ id: sessions.id, expiresAt: sessions.expiresAt })
          .from(sessions)
          .where(
            and(
              eq(sessions.id, sessionId),
              eq(sessions.userId, userId),
              isLive(idleTimeoutSeconds),
            ),
          );
        if (!session) return null;
        // The password and the sessions it protects change together, or not at all.
        await tx.update(users).set({ passwordHash }).where(eq(users.id, userId));
        await revokeUserSessions(tx, userId, sessionId);
        await tx
          .update(refreshTokens)
          .set({ revokedAt: sql`now()` })
          .where(
            and(
              eq(refreshTokens.sessionId, sessionId),
              isNull(refreshTokens.usedAt),
              isNull(refreshTokens.revokedAt),
            ),
          );
        await insertToken(tx, sessionId, refreshTokenHash);
        await tx
          .update(sessions)
          .set({ lastUsedAt: sql`now()` })
          .where(eq(sessions.id, sessionId));
        return { sessionId, expiresAt: session.expiresAt.toISOString() };
      });
    },
  };
}
