import { and, desc, eq, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { webhookDeliveries, webhookEndpoints } from '../../db/schema/webhooks.js';
import type { Position } from '../../lib/cursor.js';
import type { EventType } from '../events/types.js';
import {
  toWebhookDelivery,
  toWebhookEndpoint,
  toWebhookEndpointCreated,
  type WebhookDelivery,
  type WebhookEndpoint,
  type WebhookEndpointCreated,
} from './rows.js';

export interface NewWebhookEndpoint {
  url: string;
  description: string;
  eventTypes: readonly EventType[];
  secret: string;
  /** The admin who made it; null when nobody did (a script). */
  createdBy: string | null;
}

export interface WebhookEndpointChanges {
  url?: string | undefined;
  description?: string | undefined;
  eventTypes?: readonly EventType[] | undefined;
  enabled?: boolean | undefined;
}

/**
 * The owner of webhook_endpoints and webhook_deliveries (src/db/owners.ts) for what the
 * admin operations read and change. It answers in the API's shapes; the secret leaves it
 * only through `create` and `rotateSecret`, whose answers show it once.
 */
export interface WebhookAdminRepository {
  create(data: NewWebhookEndpoint): Promise<WebhookEndpointCreated>;
  findById(id: string): Promise<WebhookEndpoint | null>;
  /** Up to `limit` endpoints after `after`, newest first. */
  list(limit: number, after: Position | null): Promise<WebhookEndpoint[]>;
  /** Null when there is no such endpoint. */
  update(id: string, changes: WebhookEndpointChanges): Promise<WebhookEndpoint | null>;
  /** Whether there was such an endpoint (its deliveries go with it: ON DELETE CASCADE). */
  delete(id: string): Promise<boolean>;
  /**
   * Makes `secret` the current one and keeps the one it replaces for `graceSeconds` more,
   * in one statement (two rotations at once cannot both keep the same old secret).
   */
  rotateSecret(
    id: string,
    secret: string,
    graceSeconds: number,
  ): Promise<WebhookEndpointCreated | null>;
  /** Up to `limit` deliveries of the endpoint after `after`, newest first. */
  listDeliveries(
    endpointId: string,
    limit: number,
    after: Position | null,
  ): Promise<WebhookDelivery[]>;
  /** The delivery if it is one of this endpoint's; null otherwise. */
  findDelivery(endpointId: string, deliveryId: string): Promise<WebhookDelivery | null>;
}

/** Newest first: rows before the position, in (created_at, id) order, walking the index. */
function before(table: typeof webhookEndpoints | typeof webhookDeliveries, after: Position): SQL {
  return sql`(${table.createdAt}, ${table.id}) < (${after.at}::timestamptz, ${after.id}::uuid)`;
}

/** The columns an endpoint's enabled flag moves together with. */
function enabledColumns(enabled: boolean | undefined) {
  if (enabled === undefined) return {};
  // Enabling starts a clean slate: a run of failures before it no longer counts.
  return enabled
    ? { enabled: true, disabledReason: null, failingSince: null }
    : { enabled: false, disabledReason: 'admin' as const };
}

/** The columns a change writes, each named: what is not in `changes` stays as it is. */
function changedColumns({ url, description, eventTypes, enabled }: WebhookEndpointChanges) {
  return {
    ...(url === undefined ? {} : { url }),
    ...(description === undefined ? {} : { description }),
    ...(eventTypes === undefined ? {} : { eventTypes: [...eventTypes] }),
    ...enabledColumns(enabled),
  };
}

export function createWebhookAdminRepository(db: Db): WebhookAdminRepository {
  return {
    async create({ url, description, eventTypes, secret, createdBy }) {
      const [row] = await db
        .insert(webhookEndpoints)
        .values({ url, description, eventTypes: [...eventTypes], secret, createdBy })
        .returning();
      if (!row) throw new Error('INSERT … RETURNING gave no row');
      return toWebhookEndpointCreated(row);
    },

    async findById(id) {
      const [row] = await db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id));
      return row ? toWebhookEndpoint(row) : null;
    },

    async list(limit, after) {
      const rows = await db
        .select()
        .from(webhookEndpoints)
        .where(after ? before(webhookEndpoints, after) : undefined)
        .orderBy(desc(webhookEndpoints.createdAt), desc(webhookEndpoints.id))
        .limit(limit);
      return rows.map(toWebhookEndpoint);
    },

    async update(id, changes) {
      const [row] = await db
        .update(webhookEndpoints)
        .set({ ...changedColumns(changes), updatedAt: sql`now()` })
        .where(eq(webhookEndpoints.id, id))
        .returning();
      return row ? toWebhookEndpoint(row) : null;
    },

    async delete(id) {
      const rows = await db
        .delete(webhookEndpoints)
        .where(eq(webhookEndpoints.id, id))
        .returning({ id: webhookEndpoints.id });
      return rows.length > 0;
    },

    async rotateSecret(id, secret, graceSeconds) {
      const [row] = await db
        .update(webhookEndpoints)
        .set({
          // The right-hand sides read the row as it was: the old secret becomes the previous.
          previousSecret: sql`${webhookEndpoints.secret}`,
          previousSecretExpiresAt: sql`now() + make_interval(secs => ${graceSeconds})`,
          secret,
          updatedAt: sql`now()`,
        })
        .where(eq(webhookEndpoints.id, id))
        .returning();
      return row ? toWebhookEndpointCreated(row) : null;
    },

    async listDeliveries(endpointId, limit, after) {
      const rows = await db
        .select()
        .from(webhookDeliveries)
        .where(
          and(
            eq(webhookDeliveries.endpointId, endpointId),
            after ? before(webhookDeliveries, after) : undefined,
          ),
        )
        .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
        .limit(limit);
      return rows.map(toWebhookDelivery);
    },

    async findDelivery(endpointId, deliveryId) {
      const [row] = await db
        .select()
        .from(webhookDeliveries)
        .where(
          and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.endpointId, endpointId)),
        );
      return row ? toWebhookDelivery(row) : null;
    },
  };
}
