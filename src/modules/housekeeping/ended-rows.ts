import type { Db } from '../../db/client.js';
import { deleteEndedSessions } from '../auth/session-rows.js';
import { deleteEndedEmailRows } from '../email/tokens.js';

/**
 * Rows that no request can use any more, deleted a day after their end, each kind by the
 * module that owns its table: sessions (their refresh tokens go with them), email tokens
 * and the email throttle's records. At most `batch` rows of each kind a call, so that one
 * call never holds locks for long.
 */
export async function deleteEndedRows(
  db: Db,
  options: { idleTimeoutSeconds: number; batch?: number },
): Promise<{ sessions: number; emailTokens: number; emailThrottle: number }> {
  const batch = options.batch ?? 5000;
  const sessions = await deleteEndedSessions(db, {
    idleTimeoutSeconds: options.idleTimeoutSeconds,
    batch,
  });
  return { sessions, ...(await deleteEndedEmailRows(db, { batch })) };
}
