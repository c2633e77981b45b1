import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { deleteEndedRows } from '../../src/modules/housekeeping/ended-rows.js';
import { signUpAndLogin, useTestApp } from '../helpers/app.js';

const t = useTestApp({ EMAIL_POLL_INTERVAL: '0' });
const IDLE = 7 * 86400;

/** Inserts a session of `userId` as described, with one refresh token; returns its id. */
async function session(userId: string, state: string): Promise<string> {
  const [row] = await t.db.sql(sql`
    insert into sessions (user_id, created_at, last_used_at, expires_at, revoked_at)
    values (${userId}, now() - interval '40 days', ${sql.raw(state)}) returning id`);
  const id = row!.id as string;
  await t.db.sql(sql`
    insert into refresh_tokens (session_id, token_hash)
    values (${id}, md5(random()::text) || md5(random()::text))`);
  return id;
}

describe('deleting what has ended', () => {
  it('deletes sessions a day past their end, with their refresh tokens, and keeps the rest', async () => {
    const { user } = await signUpAndLogin(t);
    const kept = {
      live: await session(user.id, "now(), now() + interval '1 day', null"),
      revokedJustNow: await session(
        user.id,
        "now(), now() + interval '1 day', now() - interval '1 hour'",
      ),
      expiredJustNow: await session(user.id, "now(), now() - interval '1 hour', null"),
      idleNotLongEnough: await session(
        user.id,
        "now() - interval '7 days 1 hour', now() + interval '1 day', null",
      ),
    };
    const gone = {
      revoked: await session(
        user.id,
        "now(), now() + interval '1 day', now() - interval '25 hours'",
      ),
      expired: await session(user.id, "now(), now() - interval '25 hours', null"),
      idle: await session(
        user.id,
        "now() - interval '8 days 1 hour', now() + interval '1 day', null",
      ),
    };

    const deleted = await deleteEndedRows(t.db.database.db, { idleTimeoutSeconds: IDLE });
    expect(deleted.sessions).toBeGreaterThanOrEqual(3);

    const left = await t.db.sql(sql`select id from sessions where user_id = ${user.id}`);
    const ids = left.map((row) => row.id as string);
    for (const [name, id] of Object.entries(kept)) expect(ids, name).toContain(id);
    for (const [name, id] of Object.entries(gone)) expect(ids, name).not.toContain(id);
    const orphans = await t.db.sql(sql`
      select count(*)::int as n from refresh_tokens
      where session_id in (${sql.join(
        Object.values(gone).map((id) => sql`${id}::uuid`),
        sql`, `,
      )})`);
    expect(orphans[0]!.n).toBe(0);
  });

  it('deletes email tokens a day after their use or expiry, and keeps the rest', async () => {
    const { user } = await signUpAndLogin(t);
    const insert = async (state: string) => {
      const [row] = await t.db.sql(sql`
        insert into email_tokens (user_id, purpose, token_hash, email, expires_at, used_at)
        values (${user.id}, 'password_reset', md5(random()::text) || md5(random()::text),
                ${user.email}, ${sql.raw(state)}) returning id`);
      return row!.id as string;
    };
    const kept = [
      await insert("now() + interval '1 hour', null"),
      await insert("now() + interval '1 hour', now() - interval '1 hour'"),
      await insert("now() - interval '1 hour', null"),
    ];
    const gone = [
      await insert("now() + interval '1 hour', now() - interval '25 hours'"),
      await insert("now() - interval '25 hours', null"),
    ];
    await deleteEndedRows(t.db.database.db, { idleTimeoutSeconds: IDLE });
    const left = (await t.db.sql(sql`select id from email_tokens where user_id = ${user.id}`)).map(
      (row) => row.id as string,
    );
    for (const id of kept) expect(left).toContain(id);
    for (const id of gone) expect(left).not.toContain(id);
  });

  it("deletes the email throttle's records a day after their last email, and keeps the rest", async () => {
    const { user } = await signUpAndLogin(t);
    await t.db.sql(sql`
      insert into email_throttle (user_id, purpose, email_key, last_sent_at) values
        (${user.id}, 'password_reset', 'recent@example.com', now() - interval '23 hours'),
        (${user.id}, 'password_reset', 'old@example.com', now() - interval '25 hours')`);
    const deleted = await deleteEndedRows(t.db.database.db, { idleTimeoutSeconds: IDLE });
    expect(deleted.emailThrottle).toBeGreaterThanOrEqual(1);
    const left = await t.db.sql(
      sql`select email_key from email_throttle where user_id = ${user.id} order by email_key`,
    );
    // The sign-up's verification email is recorded too.
    expect(left.map((row) => row.email_key)).toEqual(
      [user.email.toLowerCase(), 'recent@example.com'].sort(),
    );
  });
});
