import {
  and,
  asc,
  eq,
  gt,
  inArray,
  isNull,
  ne,
  sql,
  type Placeholder,
  type SQL,
} from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { refreshTokens, sessions } from '../../db/schema/auth.js';

// What the statements of sessions and refresh tokens share: the state of a session, and
// the changes to several sessions of a user that other modules make in their own
// transactions (a password reset, disabling an account), through the functions here.

/** Why a session cannot be used: ended by someone, or by one of its limits. */
export type SessionEnd = 'revoked' | 'expired' | 'idle';

/** Why a session was revoked (sessions.end_reason). */
export type EndReason =
  'logout' | 'logout-all' | 'revoked' | 'password-changed' | 'account-disabled';

/** A session's state in a query: 'unknown' when the (left-joined) session is not there. */
export type SessionState = SessionEnd | 'live' | 'unknown';

export interface SessionRecord {
  id: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  userAgent: string | null;
  ipAddress: string | null;
}

export const seconds = (value: Placeholder | number) =>
  sql`${value}::integer * interval '1 second'`;

/** Why a session (a row of the query, maybe a missing one) is not usable, or 'live'. */
export function stateOf(idleSeconds: Placeholder | number) {
  return sql<SessionState>`case
    when ${sessions.id} is null then 'unknown'
    when ${sessions.revokedAt} is not null then 'revoked'
    when ${sessions.expiresAt} <= now() then 'expired'
    when ${sessions.lastUsedAt} <= now() - ${seconds(idleSeconds)} then 'idle'
    else 'live' end`;
}

export function isLive(idleSeconds: number): SQL {
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

/**
 * Locks a user's sessions in the order of their ids. Whatever changes several sessions of
 * a user takes their locks this way, so that two such changes (a logout-all and a password
 * change) wait for each other instead of deadlocking.
 */
export function lockOpenSessions(db: Db, userId: string, exceptSessionId: string | null = null) {
  return db
    .select({ id: sessions.id })
    .from(sessions)
    .where(
      and(
        eq(sessions.userId, userId),
        isNull(sessions.revokedAt),
        exceptSessionId === null ? undefined : ne(sessions.id, exceptSessionId),
      ),
    )
    .orderBy(asc(sessions.id))
    .for('update');
}

/**
 * Ends every session of a user (all but `exceptSessionId` when given): their refresh
 * tokens and access tokens stop working at once, since both are checked against their
 * session. Takes the database or a transaction, so that a change that must end the
 * sessions (a password reset) can do it in its own transaction. Returns how many ended.
 */
export async function revokeUserSessions(
  db: Db,
  userId: string,
  exceptSessionId: string | null,
  reason: EndReason,
): Promise<number> {
  const ended = await db
    .update(sessions)
    .set({ revokedAt: sql`now()`, endReason: reason })
    .where(inArray(sessions.id, lockOpenSessions(db, userId, exceptSessionId)))
    .returning({ id: sessions.id });
  return ended.length;
}

/**
 * Deletes, `batch` at most, the sessions that no request can use any more, a day after
 * their end (revoked, past their absolute end, or idle), so that a late request still
 * meets the state it expects for a while. Their refresh tokens go with them (the foreign
 * key). Says how many.
 */
export async function deleteEndedSessions(
  db: Db,
  { idleTimeoutSeconds, batch }: { idleTimeoutSeconds: number; batch: number },
): Promise<number> {
  const ended = db
    .select({ id: sessions.id })
    .from(sessions)
    .where(
      sql`${sessions.revokedAt} < now() - interval '1 day'
         or ${sessions.expiresAt} < now() - interval '1 day'
         or ${sessions.lastUsedAt} < now() - make_interval(secs => ${idleTimeoutSeconds}) - interval '1 day'`,
    )
    .limit(batch);
  const deleted = await db
    .delete(sessions)
    .where(inArray(sessions.id, ended))
    .returning({ id: sessions.id });
  return deleted.length;
}

/** Ends one session as a whole (its refresh tokens die with it). */
export function endSession(tx: Db, sessionId: string) {
  return tx
    .update(sessions)
    .set({ revokedAt: sql`now()`, endReason: 'revoked' })
    .where(and(eq(sessions.id, sessionId), isNull(sessions.revokedAt)));
}

/** A session's new refresh token, of which only the hash is stored; its id. */
export async function insertRefreshToken(
  tx: Db,
  sessionId: string,
  tokenHash: string,
): Promise<string> {
  const [row] = await tx
    .insert(refreshTokens)
    .values({ sessionId, tokenHash })
    .returning({ id: refreshTokens.id });
  return row!.id;
}
