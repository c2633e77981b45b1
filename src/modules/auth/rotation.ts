import { eq, sql } from 'drizzle-orm';
import type { Schemas } from '../../api-types.js';
import type { Db } from '../../db/client.js';
import { refreshTokens, sessions } from '../../db/schema/auth.js';
import { users } from '../../db/schema/users.js';
import {
  endSession,
  insertRefreshToken,
  seconds,
  stateOf,
  type SessionEnd,
} from './session-rows.js';

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

/** The presented refresh token as the exchange statement reads it. */
interface ExchangeRow {
  id: string;
  used: boolean;
  revoked: boolean;
  replaced_by: string | null;
  in_grace: boolean;
  /** Whether the statement exchanged it (it was unused and not revoked). */
  exchanged: boolean;
}

/** The session of the presented token with its account, locked: found and locked in one statement. */
async function lockSessionOf(tx: Db, presentedHash: string, idleTimeoutSeconds: number) {
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
  return session;
}

/**
 * The token, read (in a statement that begins after the session's lock is held, so it
 * sees what an exchange that held it before committed) and, when it is unused and not
 * revoked, the usual case, exchanged in the same statement: its successor inserted, the
 * token marked used and replaced by it, the session touched.
 */
async function exchange(
  tx: Db,
  sessionId: string,
  presentedHash: string,
  successorHash: string,
  reuseGraceSeconds: number,
): Promise<ExchangeRow | undefined> {
  const result: unknown = await tx.execute(sql`
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
      select ${sessionId}::uuid, ${successorHash} from token
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
       where id = ${sessionId}::uuid and exists (select 1 from successor)
    )
    select token.id, token.used, token.revoked, token.replaced_by, token.in_grace,
           exists (select 1 from successor) as exchanged
      from token`);
  return (result as { rows: ExchangeRow[] }).rows[0];
}

/**
 * A retry, within the grace period, of a used token whose successor is still unused: that
 * successor is revoked and a new one replaces it. False (nothing changed) when the
 * successor was exchanged already or is otherwise dead: the retry is then a replay.
 */
async function replaceUnusedSuccessor(
  tx: Db,
  sessionId: string,
  token: { id: string; replacedBy: string },
  successorHash: string,
): Promise<boolean> {
  const [successor] = await tx
    .select({ usedAt: refreshTokens.usedAt, revokedAt: refreshTokens.revokedAt })
    .from(refreshTokens)
    .where(eq(refreshTokens.id, token.replacedBy));
  if (!successor || successor.usedAt !== null || successor.revokedAt !== null) return false;
  await tx
    .update(refreshTokens)
    .set({ revokedAt: sql`now()` })
    .where(eq(refreshTokens.id, token.replacedBy));
  const successorId = await insertRefreshToken(tx, sessionId, successorHash);
  await tx
    .update(refreshTokens)
    .set({ replacedBy: successorId })
    .where(eq(refreshTokens.id, token.id));
  await tx
    .update(sessions)
    .set({ lastUsedAt: sql`now()` })
    .where(eq(sessions.id, sessionId));
  return true;
}

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
export function rotateRefreshToken(
  db: Db,
  limits: { idleTimeoutSeconds: number; reuseGraceSeconds: number },
  presentedHash: string,
  successorHash: string,
): Promise<Rotation> {
  return db.transaction(async (tx): Promise<Rotation> => {
    const session = await lockSessionOf(tx, presentedHash, limits.idleTimeoutSeconds);
    // No such token, or gone meanwhile: the account was deleted (its sessions with it).
    if (!session || session.state === 'unknown') return { status: 'unknown-token' };
    if (!session.isActive) return { status: 'account-disabled' };
    if (session.state !== 'live') return { status: `session-${session.state}` };

    const token = await exchange(
      tx,
      session.id,
      presentedHash,
      successorHash,
      limits.reuseGraceSeconds,
    );
    if (!token) return { status: 'unknown-token' };
    const rotated: Rotation = {
      status: 'rotated',
      userId: session.userId,
      role: session.role,
      sessionId: session.id,
      expiresAt: session.expiresAt.toISOString(),
    };
    if (token.exchanged) return rotated;
    // Revoked (replaced by a retry, or by a password change, without being exchanged):
    // whoever presents it is not the holder of the session's current token. Used before:
    // only a retry within the grace period of a token whose successor is still unused
    // gets a new successor in its place; anything else is a replay.
    const retried =
      !token.revoked &&
      token.in_grace &&
      token.replaced_by !== null &&
      (await replaceUnusedSuccessor(
        tx,
        session.id,
        { id: token.id, replacedBy: token.replaced_by },
        successorHash,
      ));
    if (retried) return rotated;
    await endSession(tx, session.id);
    return { status: 'reused' };
  });
}
