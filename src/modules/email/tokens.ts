import { and, eq, gt, inArray, isNull, lt, or, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { emailThrottle, emailTokens, type EmailTokenPurpose } from '../../db/schema/auth.js';
import type { EmailMessage } from './outbox.js';

// The single-use tokens of emailed links are opaque tokens (lib/opaque-tokens.ts): the
// token is in the link only; the database keeps its SHA-256, so a copy of the database
// lets nobody reset a password. This module owns `email_tokens` and `email_throttle`
// (src/db/owners.ts); the account flows use and check tokens through the functions here.

export interface TokenAndEmail {
  /** Null: nobody. The statement still runs, and inserts nothing. */
  userId: string | null;
  purpose: EmailTokenPurpose;
  tokenHash: string;
  /** The address the token is for, and the email's recipient. */
  address: string;
  ttlSeconds: number;
  /** Insert nothing if a token of this purpose went to this address this recently (0: always insert). */
  throttleSeconds: number;
  message: Omit<EmailMessage, 'recipient' | 'kind'>;
}

/**
 * Stores a token and queues the email that carries it, in one statement (so in the
 * caller's transaction, with the change that causes it). Says whether it did.
 *
 * The throttle is the conditional upsert of the address's `email_throttle` row: it writes
 * only when the last email of this purpose to this address is older than
 * `throttleSeconds`, and the token and the email are inserted only when it wrote. Two
 * transactions that reach it at once meet on the row's primary key: the second waits for
 * the first and then sees its write, so concurrent requests send one email, however many
 * there are and whatever the caller has locked.
 */
export async function insertTokenAndEmail(db: Db, input: TokenAndEmail): Promise<boolean> {
  const { userId, purpose, tokenHash, address, ttlSeconds, throttleSeconds, message } = input;
  const result: unknown = await db.execute(sql`
    with throttle as (
      insert into email_throttle as t (user_id, purpose, email_key, last_sent_at)
      select ${userId}::uuid, ${purpose}, lower(${address}), now()
      where ${userId}::uuid is not null
      on conflict (user_id, purpose, email_key) do update set last_sent_at = excluded.last_sent_at
        where ${throttleSeconds}::int = 0
           or t.last_sent_at <= excluded.last_sent_at - make_interval(secs => ${throttleSeconds})
      returning user_id
    ),
    token as (
      insert into email_tokens (user_id, purpose, token_hash, email, expires_at)
      select user_id, ${purpose}, ${tokenHash}, ${address},
             now() + make_interval(secs => ${ttlSeconds})
      from throttle
      returning id, expires_at
    )
    insert into email_outbox (recipient, subject, text_body, html_body, kind, expires_at)
    select ${address}, ${message.subject}, ${message.textBody}, ${message.htmlBody}, ${purpose},
           expires_at
    from token
    returning id`);
  // Both drivers answer execute() with an object that has `rows`.
  return (result as { rows: unknown[] }).rows.length > 0;
}

/** A token of this hash and purpose that is unused and unexpired. */
function usable(tokenHash: string, purpose: EmailTokenPurpose) {
  return and(
    eq(emailTokens.tokenHash, tokenHash),
    eq(emailTokens.purpose, purpose),
    isNull(emailTokens.usedAt),
    gt(emailTokens.expiresAt, sql`now()`),
  );
}

/**
 * Whether a token is unused, unexpired and of this purpose, without using it up: a cheap
 * check before expensive work (a bcrypt hash) that only a valid token deserves.
 */
export async function isLiveEmailToken(
  db: Db,
  tokenHash: string,
  purpose: EmailTokenPurpose,
): Promise<boolean> {
  const [row] = await db
    .select({ id: emailTokens.id })
    .from(emailTokens)
    .where(usable(tokenHash, purpose))
    .limit(1);
  return row !== undefined;
}

/**
 * Uses a token up if it is unused, unexpired and of this purpose, and answers whose it is
 * and for which address; null otherwise. Of two transactions using one token at once,
 * exactly one gets it: the other waits for the row and then finds it used.
 */
export async function consumeEmailToken(
  db: Db,
  tokenHash: string,
  purpose: EmailTokenPurpose,
): Promise<{ userId: string; address: string } | null> {
  const [row] = await db
    .update(emailTokens)
    .set({ usedAt: sql`now()` })
    .where(usable(tokenHash, purpose))
    .returning({ userId: emailTokens.userId, address: emailTokens.email });
  return row ?? null;
}

/** Uses up every outstanding token of this purpose of the user (older reset links die). */
export async function consumeAllEmailTokens(
  db: Db,
  userId: string,
  purpose: EmailTokenPurpose,
): Promise<void> {
  await db
    .update(emailTokens)
    .set({ usedAt: sql`now()` })
    .where(
      and(
        eq(emailTokens.userId, userId),
        eq(emailTokens.purpose, purpose),
        isNull(emailTokens.usedAt),
      ),
    );
}

/**
 * Deletes, `batch` at most of each, the tokens used or expired over a day ago (a late
 * request still meets a used token for a while) and the throttle's records of emails sent
 * over a day ago (its window is a minute; they would otherwise keep every address an
 * account ever had). Says how many of each.
 */
export async function deleteEndedEmailRows(
  db: Db,
  { batch }: { batch: number },
): Promise<{ emailTokens: number; emailThrottle: number }> {
  const dayAgo = sql`now() - interval '1 day'`;
  const endedTokens = db
    .select({ id: emailTokens.id })
    .from(emailTokens)
    .where(or(lt(emailTokens.usedAt, dayAgo), lt(emailTokens.expiresAt, dayAgo)))
    .limit(batch);
  const tokens = await db
    .delete(emailTokens)
    .where(inArray(emailTokens.id, endedTokens))
    .returning({ id: emailTokens.id });
  const staleThrottle = db
    .select({
      userId: emailThrottle.userId,
      purpose: emailThrottle.purpose,
      emailKey: emailThrottle.emailKey,
    })
    .from(emailThrottle)
    .where(lt(emailThrottle.lastSentAt, dayAgo))
    .limit(batch);
  const throttle = await db
    .delete(emailThrottle)
    .where(
      sql`(${emailThrottle.userId}, ${emailThrottle.purpose}, ${emailThrottle.emailKey}) in ${staleThrottle}`,
    )
    .returning({ userId: emailThrottle.userId });
  return { emailTokens: tokens.length, emailThrottle: throttle.length };
}
