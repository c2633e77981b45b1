import type { Db } from '../../db/client.js';
import { events, type EventRow } from '../../db/schema/events.js';
import { isoOf } from '../../db/statements.js';
import type { DomainEvent, EventType, testEventType } from './types.js';

/** What receivers get (Standard Webhooks' recommended envelope), per the spec's `webhooks:`. */
export interface WebhookEnvelope {
  type: DomainEvent['type'];
  /** RFC 3339: when the change was made (its transaction's time). */
  timestamp: string;
  data: unknown;
}

/**
 * Checks an envelope against the spec's webhook of its type and throws when it breaks the
 * contract. app.ts gives one in development and tests (src/http/webhook-payloads.ts), so
 * that a payload the spec does not describe fails the change that made it, loudly.
 */
export type PayloadCheck = (type: DomainEvent['type'], envelope: WebhookEnvelope) => void;

/** An event to record: `data` is what receivers get, the resource as the API shows it. */
export interface NewEvent {
  type: EventType | typeof testEventType;
  /** The id of the user or post the event is about. */
  subjectId: string;
  data: unknown;
}

/** The owner of `events` (src/db/owners.ts), on the writing side of the outbox. */
export interface EventsRepository {
  /**
   * Records the events in `tx`, the transaction of the change they are about: they commit
   * with it, or neither does. One statement, whatever their number.
   */
  record(tx: Db, ...newEvents: NewEvent[]): Promise<DomainEvent[]>;
}

/** The envelope receivers get for an event of the outbox. */
export function envelopeOf(
  event: Pick<DomainEvent, 'type' | 'occurredAt' | 'payload'>,
): WebhookEnvelope {
  return { type: event.type, timestamp: event.occurredAt, data: event.payload };
}

function toDomainEvent(row: Pick<EventRow, keyof typeof returned>): DomainEvent {
  return {
    id: row.id,
    type: row.type as DomainEvent['type'],
    occurredAt: isoOf(row.occurredAt),
    subjectId: row.subjectId,
    payload: row.payload,
  };
}

const returned = {
  id: events.id,
  type: events.type,
  occurredAt: events.occurredAt,
  subjectId: events.subjectId,
  payload: events.payload,
};

/** `check`: the contract's check of each payload (development and tests), none otherwise. */
export function createEventsRepository(options: { check?: PayloadCheck } = {}): EventsRepository {
  const { check } = options;
  return {
    async record(tx, ...newEvents) {
      if (newEvents.length === 0) return [];
      // occurred_at is the transaction's now(), as the changed row's updated_at is.
      const rows = await tx
        .insert(events)
        .values(newEvents.map(({ type, subjectId, data }) => ({ type, subjectId, payload: data })))
        .returning(returned);
      const recorded = rows.map(toDomainEvent);
      // After the insert, for the envelope's timestamp; a throw rolls the change back.
      if (check) for (const event of recorded) check(event.type, envelopeOf(event));
      return recorded;
    },
  };
}
