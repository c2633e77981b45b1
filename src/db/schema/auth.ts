import { sql } from 'drizzle-orm';
import {
  bigint,
  check,
  index,
  integer,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
  varchar,
} from 'drizzle-orm/pg-core';
import { users } from './users.js';

const at = (name: string) => timestamp(name, { withTimezone: true, precision: 3 });

/**
 * A signed-in device: created by a login, ended by logout, logout-all, a password change
 * or reset, or its limits. Every access token names its session (`sid`), so revoking a
 * session kills its access tokens at once, not at their expiry.
 */
export const sessions = pgTable(
  'sessions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: at('created_at').notNull().defaultNow(),
    /** The last refresh: a session idle for longer than the inactivity limit is over. */
    lastUsedAt: at('last_used_at').notNull().defaultNow(),
    /** The absolute end of the session, whatever its use. */
    expiresAt: at('expires_at').notNull(),
    revokedAt: at('revoked_at'),
    /**
     * Why it was ended (set with revoked_at): logout, logout-all, revoked (by its owner,
     * or by the rules: a refresh token presented twice, too many sessions),
     * password-changed, account-disabled. Told to the account's open sockets (`me`).
     */
    endReason: varchar('end_reason', { length: 20 }),
    userAgent: varchar('user_agent', { length: 512 }),
    ipAddress: varchar('ip_address', { length: 45 }),
  },
  (table) => [index('sessions_user_id_idx').on(table.userId)],
);

/**
 * The refresh tokens of a session (its family): only their SHA-256 is stored. Rotation
 * marks a token used and records its successor; presenting a used one outside the grace
 * period revokes the session.
 */
export const refreshTokens = pgTable(
  'refresh_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    sessionId: uuid('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    tokenHash: varchar('token_hash', { length: 64 }).notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
    /** When it was rotated (exchanged for its successor). */
    usedAt: at('used_at'),
    replacedBy: uuid('replaced_by'),
    /** When it died without being used: replaced by a retry within the grace period. */
    revokedAt: at('revoked_at'),
  },
  (table) => [
    uniqueIndex('refresh_tokens_token_hash_key').on(table.tokenHash),
    index('refresh_tokens_session_id_idx').on(table.sessionId),
  ],
);

export const emailTokenPurposes = ['password_reset', 'email_verification'] as const;
export type EmailTokenPurpose = (typeof emailTokenPurposes)[number];

/** Single-use tokens sent by email (password reset, address verification), stored hashed. */
export const emailTokens = pgTable(
  'email_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    purpose: varchar('purpose', { length: 32, enum: emailTokenPurposes }).notNull(),
    tokenHash: varchar('token_hash', { length: 64 }).notNull(),
    /** The address the token was sent to: a verification is for that address only. */
    email: varchar('email', { length: 254 }).notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
    expiresAt: at('expires_at').notNull(),
    usedAt: at('used_at'),
  },
  (table) => [
    check(
      'email_tokens_purpose_check',
      sql`${table.purpose} in ('password_reset', 'email_verification')`,
    ),
    uniqueIndex('email_tokens_token_hash_key').on(table.tokenHash),
    index('email_tokens_user_purpose_idx').on(table.userId, table.purpose, table.createdAt),
  ],
);

/**
 * The last email of a purpose sent to an account's address: the reset-link throttle, which
 * one conditional upsert checks and moves (see insertTokenAndEmail), so that concurrent
 * requests cannot all pass a check made before any of them wrote.
 */
export const emailThrottle = pgTable(
  'email_throttle',
  {
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    purpose: varchar('purpose', { length: 32, enum: emailTokenPurposes }).notNull(),
    /** The address in lower case. */
    emailKey: varchar('email_key', { length: 254 }).notNull(),
    lastSentAt: at('last_sent_at').notNull(),
  },
  (table) => [primaryKey({ columns: [table.userId, table.purpose, table.emailKey] })],
);

/**
 * Emails to send, written in the transaction of the change that causes them and sent by
 * the `email-delivery` job's runs (FOR UPDATE SKIP LOCKED: two runs never send one twice).
 */
export const emailOutbox = pgTable(
  'email_outbox',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    recipient: varchar('recipient', { length: 254 }).notNull(),
    subject: text('subject').notNull(),
    textBody: text('text_body').notNull(),
    htmlBody: text('html_body'),
    /** What the email is for ('password_reset', 'email_verification', ...): for logs and tests. */
    kind: varchar('kind', { length: 64 }).notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: at('next_attempt_at').notNull().defaultNow(),
    sentAt: at('sent_at'),
    lastError: text('last_error'),
    /** When the link in it stops working (its token's expiry); null: it carries none. */
    expiresAt: at('expires_at'),
    /**
     * When delivery was given up on: too many failed attempts, or its link expired before
     * it went out. Its body is emptied then, as once sent.
     */
    deadAt: at('dead_at'),
  },
  (table) => [
    index('email_outbox_pending_idx')
      .on(table.nextAttemptAt)
      .where(sql`${table.sentAt} is null and ${table.deadAt} is null`),
  ],
);

/**
 * Failed logins per email address (lower case), known or not, in a fixed window: the
 * per-account limit that holds whatever the attacker's IP, shared by every instance.
 */
export const loginFailures = pgTable('login_failures', {
  emailKey: varchar('email_key', { length: 254 }).primaryKey(),
  failures: integer('failures').notNull(),
  windowStartedAt: at('window_started_at').notNull(),
});
