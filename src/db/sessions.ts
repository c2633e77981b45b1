import { and, asc, eq, inArray, isNull, ne, sql } from 'drizzle-orm';
import type { Db } from './client.js';
import { sessions } from './schema/auth.js';

// Ending sessions is shared by the modules that must do it in their own transactions (a
// password change or reset, logout-all, disabling an account), so it lives with the schema.

/**
 * Ends every session of a user (all but `exceptSessionId` when given): their refresh
 * tokens and access tokens stop working at once, since both are checked against their
 * session. Takes the database or a transaction, so that a change that must end the
 * sessions (a password reset) can do it in its own transaction. Returns how many ended.
 */
export async function revokeUserSessions(
  db: Db,
  userId: string,
  exceptSessionId: string | null = null,
): Promise<number> {
  const ended = await db
    .update(sessions)
    .set({ revokedAt: sql`now()` })
    .where(inArray(sessions.id, lockOpenSessions(db, userId, exceptSessionId)))
    .returning({ id: sessions.id });
  return ended.length;
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
