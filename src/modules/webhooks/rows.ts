import type { Schemas } from '../../api-types.js';
import type { WebhookDeliveryRow, WebhookEndpointRow } from '../../db/schema/webhooks.js';
import { isoOf } from '../../db/statements.js';
import type { EventType } from '../events/types.js';

export type WebhookEndpoint = Schemas['WebhookEndpoint'];
/** An endpoint with its secret: the answer of createWebhook and rotateWebhookSecret only. */
export type WebhookEndpointCreated = Schemas['WebhookEndpointCreated'];
export type WebhookDelivery = Schemas['WebhookDelivery'];

const isoOrNull = (instant: Date | null): string | null => (instant ? isoOf(instant) : null);

/**
 * The one mapping from an endpoint's row to the API's WebhookEndpoint: the secrets stay
 * behind (the column list is spelt out so that a new column does not leak by default).
 */
export function toWebhookEndpoint(row: WebhookEndpointRow): WebhookEndpoint {
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    // The column holds only names the API accepted (the spec's enum) when it was written.
    events: row.eventTypes as EventType[],
    enabled: row.enabled,
    disabledReason: row.disabledReason,
    createdAt: isoOf(row.createdAt),
    updatedAt: isoOf(row.updatedAt),
  };
}

/** The endpoint with its current secret, for the two answers that show it. */
export function toWebhookEndpointCreated(row: WebhookEndpointRow): WebhookEndpointCreated {
  return {
    ...toWebhookEndpoint(row),
    secret: row.secret,
    previousSecretExpiresAt: row.previousSecret ? isoOrNull(row.previousSecretExpiresAt) : null,
  };
}

/** The one mapping from a delivery's row to the API's WebhookDelivery. */
export function toWebhookDelivery(row: WebhookDeliveryRow): WebhookDelivery {
  return {
    id: row.id,
    eventId: row.eventId,
    eventType: row.eventType,
    status: row.status,
    attempts: row.attempts,
    nextAttemptAt: isoOrNull(row.nextAttemptAt),
    lastAttemptAt: isoOrNull(row.lastAttemptAt),
    responseStatus: row.responseStatus,
    responseBody: row.responseBody,
    durationMs: row.durationMs,
    lastError: row.lastError,
    createdAt: isoOf(row.createdAt),
  };
}
