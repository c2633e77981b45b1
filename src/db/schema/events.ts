import { sql } from 'drizzle-orm';
import { bigint, index, jsonb, pgTable, timestamp, uuid, varchar } from 'drizzle-orm/pg-core';

/**
 * The events outbox: one row per change that other systems may hear of (`post.published`,
 * `user.deleted`, …), written in the transaction of the change, so that an event exists
 * exactly when its change committed. The relay hands each unrelayed row to the job queue
 * once (keyed by the event's id) and then sets `relayed_at`.
 */
export const events = pgTable(
  'events',
  {
    /** The event's id: the `webhook-id` receivers de-duplicate by. */
    id: uuid('id').primaryKey().defaultRandom(),
    /** Commit order is not id order; this is the order events were written in. */
    position: bigint('position', { mode: 'number' }).generatedAlwaysAsIdentity().notNull(),
    type: varchar('type', { length: 64 }).notNull(),
    occurredAt: timestamp('occurred_at', { withTimezone: true, precision: 3 })
      .notNull()
      .defaultNow(),
    /** The id of the resource the event is about (a user's or a post's). */
    subjectId: uuid('subject_id').notNull(),
    /** What receivers get as `data`: the resource as the API shows it, per the spec's webhooks. */
    payload: jsonb('payload').notNull(),
    /** Null until the relay has queued the event. */
    relayedAt: timestamp('relayed_at', { withTimezone: true, precision: 3 }),
  },
  (table) => [
    // The relay's work list: small, because relayed rows leave it at once.
    index('events_unrelayed_idx')
      .on(table.position)
      .where(sql`${table.relayedAt} is null`),
    index('events_occurred_at_idx').on(table.occurredAt),
  ],
);

export type EventRow = typeof events.$inferSelect;
