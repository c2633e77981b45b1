import { sql } from 'drizzle-orm';
import {
  boolean,
  check,
  index,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
  varchar,
} from 'drizzle-orm/pg-core';

// Millisecond precision: the API speaks JavaScript Dates, and keyset cursors compare
// timestamps, so the database must not keep digits a client can never send back.
export const userRoles = ['user', 'admin'] as const;
export type UserRole = (typeof userRoles)[number];

export const timestamps = {
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
};

export const users = pgTable(
  'users',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    email: varchar('email', { length: 254 }).notNull(),
    username: varchar('username', { length: 50 }).notNull(),
    passwordHash: text('password_hash').notNull(),
    firstName: varchar('first_name', { length: 100 }),
    lastName: varchar('last_name', { length: 100 }),
    isActive: boolean('is_active').notNull().default(true),
    emailVerified: boolean('email_verified').notNull().default(false),
    role: varchar('role', { length: 16, enum: userRoles }).notNull().default('user'),
    ...timestamps,
  },
  (table) => [
    check('users_role_check', sql`${table.role} in ('user', 'admin')`),
    // Unique regardless of case: Ada@example.com and ada@example.com are one mailbox.
    uniqueIndex('users_email_lower_key').on(sql`lower(${table.email})`),
    uniqueIndex('users_username_lower_key').on(sql`lower(${table.username})`),
    // Keyset pagination of listUsers walks this index.
    index('users_created_at_id_idx').on(table.createdAt, table.id),
  ],
);

export type UserRow = typeof users.$inferSelect;
export type NewUserRow = typeof users.$inferInsert;

/** Which unique index guards which API field, to turn a violation into a 409 on that field. */
export const userUniqueFields: Record<string, 'email' | 'username'> = {
  users_email_lower_key: 'email',
  users_username_lower_key: 'username',
};
