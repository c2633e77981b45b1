import { sql } from 'drizzle-orm';
import type { Db } from './client.js';

/**
 * Rows that no request can use any more, deleted a day after their end so that a late
 * request still meets the state it expects (a revoked session, a used token) for a while:
 * sessions that were revoked, passed their absolute end or went idle (their refresh tokens
 * go with them, by the foreign key), email tokens that were used or expired, and the email
 * throttle's records of emails sent over a day ago (its window is a minute; they would
 * otherwise keep every address an account ever had). At most `batch` rows of each kind a
 * call, so that one call never holds locks for long.
 */
export async function deleteEndedRows(
  db: Db,
  options: { idleTimeoutSeconds: number; batch?: number },
): Promise<{ sessions: number; emailTokens: number; emailThrottle: number }> {
  const batch = options.batch ?? 5000;
  const sessions: unknown = await db.execute(sql`
    delete from sessions where id in (
      select id from sessions
      where revoked_at < now() - interval '1 day'
         or expires_at < now() - interval '1 day'
         or last_used_at < now() - make_interval(secs => ${options.idleTimeoutSeconds}) - interval '1 day'
      limit ${batch})
    returning id`);
  const emailTokens: unknown = await db.execute(sql`
    delete from email_tokens where id in (
      select id from email_tokens
      where used_at < now() - interval '1 day' or expires_at < now() - interval '1 day'
      limit ${batch})
    returning id`);
  const emailThrottle: unknown = await db.execute(sql`
    delete from email_throttle where (user_id, purpose, email_key) in (
      select user_id, purpose, email_key from email_throttle
      where last_sent_at < now() - interval '1 day'
      limit ${batch})
    returning user_id`);
  // Both drivers answer execute() with an object that has `rows`.
  const count = (result: unknown) => (result as { rows: unknown[] }).rows.length;
  return {
    sessions: count(sessions),
    emailTokens: count(emailTokens),
    emailThrottle: count(emailThrottle),
  };
}
