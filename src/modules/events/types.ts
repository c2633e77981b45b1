/**
 * The event types other systems can subscribe to, one per kind of change. Each is declared
 * in the spec's `webhooks:` section with its payload; a draft's changes produce none.
 */
export const eventTypes = [
  'user.created',
  'user.deleted',
  'post.published',
  'post.updated',
  'post.unpublished',
  'post.deleted',
] as const;
export type EventType = (typeof eventTypes)[number];

/** Sent only to the endpoint an admin tests (sendWebhookTest); nobody subscribes to it. */
export const testEventType = 'webhook.test';

/** An event as the outbox holds it and the queue carries it. */
export interface DomainEvent {
  id: string;
  type: EventType | typeof testEventType;
  /** RFC 3339. */
  occurredAt: string;
  subjectId: string;
  payload: unknown;
}
