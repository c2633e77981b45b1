import type { PgTable } from 'drizzle-orm/pg-core';
import type * as schema from './schema/index.js';

/** The SQL name of every table of the schema. */
export type TableName = {
  [K in keyof typeof schema]: (typeof schema)[K] extends PgTable
    ? (typeof schema)[K]['_']['name']
    : never;
}[keyof typeof schema];

/**
 * The module (a folder of src/modules) that owns each table: only that module's code
 * writes it; every other module changes it by calling the owner (DESIGN.md §1). A table
 * added to the schema without an owner here fails the type check; a write from another
 * module fails `npm run check:imports` and tests/unit/table-owners.test.ts
 * (scripts/check-ownership.ts). Foreign keys' ON DELETE CASCADE (a deleted account takes
 * its sessions, tokens and posts) is the database's doing, not a module's.
 */
export const tableOwners = {
  users: 'users',
  sessions: 'auth',
  refresh_tokens: 'auth',
  login_failures: 'auth',
  email_tokens: 'email',
  email_throttle: 'email',
  email_outbox: 'email',
  posts: 'posts',
  events: 'events',
  webhook_endpoints: 'webhooks',
  webhook_deliveries: 'webhooks',
} as const satisfies Record<TableName, string>;
