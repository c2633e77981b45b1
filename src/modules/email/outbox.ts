import { and, asc, eq, gt, inArray, isNull, lte, or, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { emailOutbox } from '../../db/schema/auth.js';

/** An email as the outbox stores it. */
export interface EmailMessage {
  recipient: string;
  subject: string;
  textBody: string;
  htmlBody: string | null;
  /** What it is for ('password_reset', 'email_verification'): for logs and tests. */
  kind: string;
}

export interface DueEmail extends EmailMessage {
  id: number;
  /** Failed attempts so far. */
  attempts: number;
}

/** Back-off after a failed attempt: 30 s, 1 min, 2 min, … doubling up to one hour. */
export const RETRY_BASE_SECONDS = 30;
export const RETRY_MAX_SECONDS = 3600;

/** Why an email was given up on: it failed too often, or its link expired unsent. */
export type DeadReason = 'attempts' | 'expired';

/** The delivery's side of the outbox (emails are written by tokens.ts, in their cause's transaction). */
export interface OutboxRepository {
  /**
   * Takes up to `limit` due emails for `leaseSeconds`: their next attempt moves that far
   * ahead, so no other run takes them meanwhile (SKIP LOCKED: two runs claiming at
   * once get different rows, neither waits). An email whose sender died is due again
   * once its lease is over.
   */
  claimDue(limit: number, leaseSeconds: number): Promise<DueEmail[]>;
  markSent(id: number): Promise<void>;
  /**
   * Counts a failed attempt and schedules the next one, further off each time; at the
   * `maxAttempts`th failure the email is dead instead (and its body emptied). Says which.
   */
  markFailed(id: number, error: string, maxAttempts: number): Promise<'retry' | 'dead'>;
  /**
   * Gives up on the unsent emails whose link has expired: dead, their bodies emptied, so
   * that no row keeps a link past its expiry. Says how many.
   */
  expireStale(): Promise<number>;
  /** How many emails are due and not sent (the backlog, for metrics). */
  countDue(): Promise<number>;
}

/** Neither sent nor given up on. */
const pending = and(isNull(emailOutbox.sentAt), isNull(emailOutbox.deadAt));

export function createOutboxRepository(db: Db): OutboxRepository {
  return {
    async claimDue(limit, leaseSeconds) {
      const due = db
        .select({ id: emailOutbox.id })
        .from(emailOutbox)
        .where(
          and(
            pending,
            lte(emailOutbox.nextAttemptAt, sql`now()`),
            // An expired link is not worth sending (expireStale gives up on it).
            or(isNull(emailOutbox.expiresAt), gt(emailOutbox.expiresAt, sql`now()`)),
          ),
        )
        .orderBy(asc(emailOutbox.nextAttemptAt), asc(emailOutbox.id))
        .limit(limit)
        .for('update', { skipLocked: true });
      const rows = await db
        .update(emailOutbox)
        .set({ nextAttemptAt: sql`now() + make_interval(secs => ${leaseSeconds})` })
        .where(inArray(emailOutbox.id, due))
        .returning({
          id: emailOutbox.id,
          recipient: emailOutbox.recipient,
          subject: emailOutbox.subject,
          textBody: emailOutbox.textBody,
          htmlBody: emailOutbox.htmlBody,
          kind: emailOutbox.kind,
          attempts: emailOutbox.attempts,
        });
      return rows.sort((a, b) => a.id - b.id);
    },

    async markSent(id) {
      await db
        .update(emailOutbox)
        // The body goes once the email is out: its links are credentials (a reset link is as
        // good as a password for 30 minutes), and the row stays as the record of the send.
        .set({ sentAt: sql`now()`, textBody: '', htmlBody: null })
        .where(eq(emailOutbox.id, id));
    },

    async countDue() {
      // The partial index on pending emails' next attempt covers it.
      const [row] = await db
        .select({ due: sql<number>`count(*)::int` })
        .from(emailOutbox)
        .where(and(pending, lte(emailOutbox.nextAttemptAt, sql`now()`)));
      return row?.due ?? 0;
    },

    async markFailed(id, error, maxAttempts) {
      // The right-hand sides see the row as it was: `attempts` is the count before this one.
      const dies = sql`${emailOutbox.attempts} + 1 >= ${maxAttempts}`;
      const [row] = await db
        .update(emailOutbox)
        .set({
          attempts: sql`${emailOutbox.attempts} + 1`,
          lastError: error.slice(0, 2000),
          nextAttemptAt: sql`now() + make_interval(secs => least(${RETRY_BASE_SECONDS} * power(2, least(${emailOutbox.attempts}, 20)), ${RETRY_MAX_SECONDS}))`,
          // A dead email keeps its record (recipient, kind, attempts, last error), not its
          // links.
          deadAt: sql`case when ${dies} then now() end`,
          textBody: sql`case when ${dies} then '' else ${emailOutbox.textBody} end`,
          htmlBody: sql`case when ${dies} then null else ${emailOutbox.htmlBody} end`,
        })
        .where(eq(emailOutbox.id, id))
        .returning({ deadAt: emailOutbox.deadAt });
      return row?.deadAt ? 'dead' : 'retry';
    },

    async expireStale() {
      const rows = await db
        .update(emailOutbox)
        .set({
          deadAt: sql`now()`,
          lastError: 'its link expired before it could be sent',
          textBody: '',
          htmlBody: null,
        })
        .where(and(pending, lte(emailOutbox.expiresAt, sql`now()`)))
        .returning({ id: emailOutbox.id });
      return rows.length;
    },
  };
}
