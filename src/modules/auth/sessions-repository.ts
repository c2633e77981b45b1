import { and, asc, desc, eq, gt, inArray, isNull, ne, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { FOREIGN_KEY_VIOLATION, databaseErrorOf } from '../../db/errors.js';
import { refreshTokens, sessions } from '../../db/schema/auth.js';
import { users } from '../../db/schema/users.js';
import { preparedRows } from '../../db/statements.js';
import { accountColumns } from '../users/rows.js';
import { toUser, writePasswordHash, type User } from '../users/repository.js';
import { rotateRefreshToken, type Rotation } from './rotation.js';
import {
  insertRefreshToken,
  isLive,
  lockOpenSessions,
  revokeUserSessions,
  seconds,
  stateOf,
  toSessionRecord,
  type EndReason,
  type SessionEnd,
  type SessionRecord,
} from './session-rows.js';

export type { Rotation } from './rotation.js';
export type { EndReason, SessionEnd, SessionRecord } from './session-rows.js';

/** The per-request check of an access token's account and session. */
export type SessionCheck =
  | { status: 'live'; user: User }
  | { status: 'account-deleted' | 'account-disabled' | 'session-unknown' }
  | { status: `session-${SessionEnd}` };

/** A check of checkMany: a revoked session says why it was revoked. */
export type LiveSessionCheck =
  | { status: 'live'; user: User }
  | {
      status:
        | 'account-deleted'
        | 'account-disabled'
        | 'session-unknown'
        | 'session-expired'
        | 'session-idle';
    }
  | { status: 'session-revoked'; reason: EndReason };

export interface RevokedSession {
  sessionId: string;
  userId: string;
  reason: EndReason;
  revokedAt: Date;
}

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

export interface SessionLimits {
  /** A session's absolute lifetime, from its login. */
  refreshTokenTtlSeconds: number;
  /** A session not refreshed for this long is over. */
  idleTimeoutSeconds: number;
  /** How long after its exchange a refresh token may be presented again (a retry). */
  reuseGraceSeconds: number;
}

/**
 * The owner of `sessions` and `refresh_tokens` (src/db/owners.ts): the only code that
 * writes them (session-rows.ts and rotation.ts are its parts). It reads the account of a
 * session from `users` and changes a password through the users module. Times are
 * compared with the database's clock (`now()`), the one every row was stamped with.
 */
export interface SessionsRepository {
  /** A new session with its first refresh token; null when the account no longer exists. */
  create(data: NewSession): Promise<StartedSession | null>;
  /** The account of an access token, if the session `sessionId` is its and is live. */
  check(userId: string, sessionId: string): Promise<SessionCheck>;
  /**
   * `check` for many sessions at once, in one statement: the sessions of the open sockets
   * (the live updates), looked at twice a second. By session id.
   */
  checkMany(
    pairs: readonly { userId: string; sessionId: string }[],
  ): Promise<Map<string, LiveSessionCheck>>;
  /** The sessions of these users revoked after `since` (by the database's clock). */
  revokedSince(userIds: readonly string[], since: Date): Promise<RevokedSession[]>;
  /**
   * Exchanges the refresh token whose hash is `presentedHash` for one whose hash is
   * `successorHash`, by the rotation rules (see the implementation).
   */
  rotate(presentedHash: string, successorHash: string): Promise<Rotation>;
  /** The user's live sessions, newest first. */
  listLive(userId: string): Promise<SessionRecord[]>;
  /** Ends one live session of the user; false when the user has no such live session. */
  revoke(userId: string, sessionId: string, reason: 'logout' | 'revoked'): Promise<boolean>;
  /**
   * Ends every session of the user, except `exceptSessionId` when given; in `tx` when
   * given (disabling an account ends its sessions in the same transaction).
   */
  revokeAll(userId: string, reason: 'logout-all' | 'account-disabled', tx?: Db): Promise<number>;
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

/**
 * The most live sessions an account has (SessionList's maxItems in the spec): a login past
 * them ends the least recently used one.
 */
export const MAX_LIVE_SESSIONS = 100;

/** The first key of the advisory locks that order an account's logins (the second: its id). */
const LOGIN_LOCK_SPACE = 0x5e55;

/**
 * Ends the live sessions of the user past the MAX_LIVE_SESSIONS - 1 most recently used
 * other than `newSessionId`. They are locked in the order of their ids first, as every
 * change to several sessions of a user locks them (lockOpenSessions), so that this and a
 * logout-all wait for each other instead of deadlocking.
 */
function endLeastRecentlyUsed(tx: Db, userId: string, newSessionId: string, idleSeconds: number) {
  const overflow = tx
    .select({ id: sessions.id })
    .from(sessions)
    .where(and(eq(sessions.userId, userId), ne(sessions.id, newSessionId), isLive(idleSeconds)))
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
    .set({ revokedAt: sql`now()`, endReason: 'revoked' })
    .where(inArray(sessions.id, locked));
}

async function createIn(
  db: Db,
  { userId, userAgent, ipAddress, refreshTokenHash }: NewSession,
  limits: SessionLimits,
): Promise<StartedSession | null> {
  try {
    return await db.transaction(async (tx) => {
      // The account's logins one at a time (until commit), so that two at once cannot
      // both leave MAX_LIVE_SESSIONS others live: each sees the one before it.
      await tx.execute(sql`select pg_advisory_xact_lock(${LOGIN_LOCK_SPACE}, hashtext(${userId}))`);
      const [session] = await tx
        .insert(sessions)
        .values({
          userId,
          userAgent,
          ipAddress,
          expiresAt: sql`now() + ${seconds(limits.refreshTokenTtlSeconds)}`,
        })
        .returning({ id: sessions.id, expiresAt: sessions.expiresAt });
      await insertRefreshToken(tx, session!.id, refreshTokenHash);
      await endLeastRecentlyUsed(tx, userId, session!.id, limits.idleTimeoutSeconds);
      return { sessionId: session!.id, expiresAt: session!.expiresAt.toISOString() };
    });
  } catch (error) {
    // The account was deleted between the password check and now.
    if (databaseErrorOf(error)?.code === FOREIGN_KEY_VIOLATION) return null;
    throw error;
  }
}

type PasswordChange = Parameters<SessionsRepository['changePassword']>[0];

function changePasswordIn(
  db: Db,
  { userId, sessionId, passwordHash, refreshTokenHash }: PasswordChange,
  idleSeconds: number,
): Promise<StartedSession | null> {
  return db.transaction(async (tx) => {
    await lockOpenSessions(tx, userId);
    const [session] = await tx
      .select({ id: sessions.id, expiresAt: sessions.expiresAt })
      .from(sessions)
      .where(and(eq(sessions.id, sessionId), eq(sessions.userId, userId), isLive(idleSeconds)));
    if (!session) return null;
    // The password and the sessions it protects change together, or not at all.
    await writePasswordHash(tx, userId, passwordHash);
    await revokeUserSessions(tx, userId, sessionId, 'password-changed');
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
    await insertRefreshToken(tx, sessionId, refreshTokenHash);
    await tx
      .update(sessions)
      .set({ lastUsedAt: sql`now()` })
      .where(eq(sessions.id, sessionId));
    return { sessionId, expiresAt: session.expiresAt.toISOString() };
  });
}

/**
 * Every secured request runs this: one statement, by primary key on both tables, that
 * tells a deleted account, a disabled one and an ended session apart; a named statement
 * (db/statements.ts).
 */
function checkStatement(db: Db, idleSeconds: number) {
  const fields = { ...accountColumns, state: stateOf(idleSeconds) };
  return preparedRows(
    db,
    'session_check',
    db
      .select(fields)
      .from(users)
      .leftJoin(
        sessions,
        and(eq(sessions.id, sql.placeholder('sessionId')), eq(sessions.userId, users.id)),
      )
      .where(eq(users.id, sql.placeholder('userId'))),
    fields,
  );
}

/**
 * The one reading of a checked session's row: its account gone (no row), disabled, the
 * session live (with the account), or how it ended (with why, when it was revoked).
 */
function checkOf(
  row: (Parameters<typeof toUser>[0] & { state: string; endReason?: string | null }) | undefined,
): LiveSessionCheck {
  if (!row) return { status: 'account-deleted' };
  if (!row.isActive) return { status: 'account-disabled' };
  if (row.state === 'live') return { status: 'live', user: toUser(row) };
  if (row.state === 'revoked')
    return { status: 'session-revoked', reason: (row.endReason ?? 'revoked') as EndReason };
  return { status: `session-${row.state as 'unknown' | 'expired' | 'idle'}` };
}

/** checkMany: one statement for the sessions of the open sockets. */
async function checkSessions(
  db: Db,
  idleTimeoutSeconds: number,
  pairs: readonly { userId: string; sessionId: string }[],
): Promise<Map<string, LiveSessionCheck>> {
  const checks = new Map<string, LiveSessionCheck>();
  if (pairs.length === 0) return checks;
  const rows = await db
    .select({
      ...accountColumns,
      state: stateOf(idleTimeoutSeconds),
      sessionId: sessions.id,
      owner: sessions.userId,
      endReason: sessions.endReason,
    })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(inArray(sessions.id, [...new Set(pairs.map((pair) => pair.sessionId))]));
  const byId = new Map(rows.map((row) => [row.sessionId, row]));
  for (const { userId, sessionId } of pairs) {
    const row = byId.get(sessionId);
    // A session row goes with its account (or a day after its end, housekeeping).
    checks.set(sessionId, checkOf(row?.owner === userId ? row : undefined));
  }
  return checks;
}

async function revokedSessions(
  db: Db,
  userIds: readonly string[],
  since: Date,
): Promise<RevokedSession[]> {
  if (userIds.length === 0) return [];
  const rows = await db
    .select({
      sessionId: sessions.id,
      userId: sessions.userId,
      reason: sessions.endReason,
      revokedAt: sessions.revokedAt,
    })
    .from(sessions)
    .where(and(inArray(sessions.userId, [...userIds]), gt(sessions.revokedAt, since)));
  return rows.map((row) => ({
    sessionId: row.sessionId,
    userId: row.userId,
    reason: (row.reason ?? 'revoked') as EndReason,
    revokedAt: row.revokedAt!,
  }));
}

export function createSessionsRepository(db: Db, limits: SessionLimits): SessionsRepository {
  const { idleTimeoutSeconds } = limits;
  const check = checkStatement(db, idleTimeoutSeconds);
  return {
    create: (data) => createIn(db, data, limits),

    async check(userId, sessionId) {
      const [row] = await check({ userId, sessionId });
      return checkOf(row);
    },

    checkMany: (pairs) => checkSessions(db, idleTimeoutSeconds, pairs),
    revokedSince: (userIds, since) => revokedSessions(db, userIds, since),

    rotate: (presentedHash, successorHash) =>
      rotateRefreshToken(db, limits, presentedHash, successorHash),

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

    async revoke(userId, sessionId, reason) {
      const ended = await db
        .update(sessions)
        .set({ revokedAt: sql`now()`, endReason: reason })
        .where(
          and(eq(sessions.id, sessionId), eq(sessions.userId, userId), isLive(idleTimeoutSeconds)),
        )
        .returning({ id: sessions.id });
      return ended.length > 0;
    },

    revokeAll: (userId, reason, tx = db) => revokeUserSessions(tx, userId, null, reason),

    changePassword: (change) => changePasswordIn(db, change, idleTimeoutSeconds),
  };
}
