import { sql } from 'drizzle-orm';
import {
  boolean,
  check,
  index,
  integer,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
  varchar,
} from 'drizzle-orm/pg-core';
import { events } from './events.js';
import { timestamps, users } from './users.js';

export const webhookDisabledReasons = ['admin', 'failing'] as const;
export type WebhookDisabledReason = (typeof webhookDisabledReasons)[number];

/**
 * Where events are sent: an admin's endpoint, the event types it wants, and the secret its
 * deliveries are signed with (Standard Webhooks). The secret is kept as is because signing
 * needs it; after a rotation the previous one stays valid until `previous_secret_expires_at`
 * and deliveries carry both signatures meanwhile.
 */
export const webhookEndpoints = pgTable(
  'webhook_endpoints',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    url: varchar('url', { length: 2048 }).notNull(),
    description: varchar('description', { length: 500 }).notNull().default(''),
    eventTypes: text('event_types').array().notNull(),
    enabled: boolean('enabled').notNull().default(true),
    /** Why it is disabled: by an admin, or because it kept failing. Null when enabled. */
    disabledReason: varchar('disabled_reason', { length: 16, enum: webhookDisabledReasons }),
    secret: text('secret').notNull(),
    previousSecret: text('previous_secret'),
    previousSecretExpiresAt: timestamp('previous_secret_expires_at', {
      withTimezone: true,
      precision: 3,
    }),
    /** The first failure of the current run of failures; null after a success. */
    failingSince: timestamp('failing_since', { withTimezone: true, precision: 3 }),
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
    ...timestamps,
  },
  (table) => [
    check(
      'webhook_endpoints_disabled_reason_check',
      sql`${table.disabledReason} is null or ${table.disabledReason} in ('admin', 'failing')`,
    ),
    index('webhook_endpoints_created_at_id_idx').on(table.createdAt.desc(), table.id.desc()),
  ],
);

export const webhookDeliveryStatuses = ['pending', 'succeeded', 'failed'] as const;
export type WebhookDeliveryStatus = (typeof webhookDeliveryStatuses)[number];

/**
 * One event for one endpoint: at most one row per pair (the fan-out is idempotent), with
 * the outcome of its latest attempt. `attempts` counts attempts begun; an attempt is claimed
 * by moving it from n to n + 1 in one statement, so two workers never make the same one.
 */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    endpointId: uuid('endpoint_id')
      .notNull()
      .references(() => webhookEndpoints.id, { onDelete: 'cascade' }),
    eventId: uuid('event_id')
      .notNull()
      .references(() => events.id, { onDelete: 'cascade' }),
    eventType: varchar('event_type', { length: 64 }).notNull(),
    status: varchar('status', { length: 16, enum: webhookDeliveryStatuses })
      .notNull()
      .default('pending'),
    attempts: integer('attempts').notNull().default(0),
    /** When the next attempt is due; null once it succeeded or failed for good. */
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true, precision: 3 }),
    lastAttemptAt: timestamp('last_attempt_at', { withTimezone: true, precision: 3 }),
    responseStatus: integer('response_status'),
    /** The start of the receiver's answer, at most 1 KB. */
    responseBody: varchar('response_body', { length: 1024 }),
    durationMs: integer('duration_ms'),
    lastError: varchar('last_error', { length: 500 }),
    ...timestamps,
  },
  (table) => [
    check(
      'webhook_deliveries_status_check',
      sql`${table.status} in ('pending', 'succeeded', 'failed')`,
    ),
    uniqueIndex('webhook_deliveries_endpoint_event_key').on(table.endpointId, table.eventId),
    // An endpoint's deliveries, newest first (listWebhookDeliveries).
    index('webhook_deliveries_endpoint_created_at_id_idx').on(
      table.endpointId,
      table.createdAt.desc(),
      table.id.desc(),
    ),
    index('webhook_deliveries_event_idx').on(table.eventId),
  ],
);

export type WebhookEndpointRow = typeof webhookEndpoints.$inferSelect;
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;
