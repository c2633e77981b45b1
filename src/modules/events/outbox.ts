import { asc, inArray, isNull, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { withTimeout } from '../../lib/timeout.js';
import { events, type EventRow } from '../../db/schema/events.js';
import type { DomainEvent } from './types.js';

/**
 * The relay: it moves committed events from the outbox (the `events` table) into the job
 * queue. Each batch is locked (`FOR UPDATE SKIP LOCKED`, so relays of several instances
 * take different rows, and a row committed late is still seen: no "id > last"), handed to
 * `publish`, and marked relayed in the same transaction. A failed publish rolls back: the
 * events stay unrelayed and are tried again. A publish that succeeded under a transaction
 * that then failed publishes them again: the queue dedupes them by the event's id.
 */
export interface EventsRelay {
  /** Relays everything unrelayed now, batch after batch; says how many. Throws on failure. */
  relayAll(): Promise<number>;
  /** Polls every `pollIntervalMs` (backing off while publishing fails) until stop(). */
  start(): void;
  /** Relays soon instead of at the next poll (an event has just been committed). */
  nudge(): void;
  /** Stops polling, after the batch in hand. */
  stop(): Promise<void>;
}

export interface RelayOptions {
  db: Db;
  /** Puts the events in the queue; rejects if it could not (they are kept and retried). */
  publish(events: DomainEvent[]): Promise<void>;
  log: {
    warn(facts: Record<string, unknown>, message: string): void;
    info(facts: Record<string, unknown>, message: string): void;
  };
  pollIntervalMs: number;
  /**
   * Told of each batch as it is taken, before it is queued (the live updates' bus): the
   * events are committed already, and the sockets need not wait for the queue, nor go
   * without while it is down. A batch whose queueing failed is told again when it is
   * taken again (the live hub drops what it has sent). It must not throw, and is not
   * waited for.
   */
  onTaken?: (events: DomainEvent[]) => void;
  /** The longest wait between two tries while publishing fails. */
  maxBackoffMs?: number;
  batchSize?: number;
  /**
   * How long a publish may take before the batch is rolled back (its locks held meanwhile):
   * a queue that does not answer must not hold the rows for good.
   */
  publishTimeoutMs?: number;
}

function toEvent(row: EventRow): DomainEvent {
  return {
    id: row.id,
    type: row.type as DomainEvent['type'],
    occurredAt: row.occurredAt.toISOString(),
    subjectId: row.subjectId,
    payload: row.payload,
  };
}

/** One batch: locked, published, marked. Returns how many it relayed. */
async function relayBatch(options: RelayOptions, batchSize: number): Promise<number> {
  const relayed = await options.db.transaction(async (tx) => {
    const rows = await tx
      .select()
      .from(events)
      .where(isNull(events.relayedAt))
      .orderBy(asc(events.position))
      .limit(batchSize)
      .for('update', { skipLocked: true });
    if (rows.length === 0) return [];
    const batch = rows.map(toEvent);
    options.onTaken?.(batch);
    await withTimeout(
      options.publish(batch),
      options.publishTimeoutMs ?? 5000,
      'the job queue did not take the events in time',
    );
    await tx
      .update(events)
      .set({ relayedAt: sql`now()` })
      .where(
        inArray(
          events.id,
          rows.map((row) => row.id),
        ),
      );
    return batch;
  });
  return relayed.length;
}

function summary(error: unknown): { message: string } {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  return { message: cause instanceof Error ? cause.message : String(error) };
}

export function createEventsRelay(options: RelayOptions): EventsRelay {
  const batchSize = options.batchSize ?? 100;
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;
  let running: Promise<number> | null = null;
  let timer: NodeJS.Timeout | undefined;
  let stopped = true;
  let failures = 0;

  async function relayAllNow(): Promise<number> {
    let total = 0;
    for (;;) {
      const relayed = await relayBatch(options, batchSize);
      total += relayed;
      if (relayed < batchSize) return total;
    }
  }
  // One run at a time; a call during a run waits for it, then runs again.
  const relayAll = async (): Promise<number> => {
    while (running) await running.catch(() => undefined);
    running = relayAllNow();
    try {
      return await running;
    } finally {
      running = null;
    }
  };

  function schedule(delayMs: number) {
    clearTimeout(timer);
    if (stopped) return;
    timer = setTimeout(() => void tick(), delayMs);
    timer.unref();
  }

  async function tick() {
    try {
      await relayAll();
      if (failures > 0) {
        options.log.info({ failures }, 'events relay resumed: events reach the job queue again');
      }
      failures = 0;
      schedule(options.pollIntervalMs);
    } catch (error) {
      // Logged once per outage; the events wait in the database meanwhile.
      if (failures === 0) {
        options.log.warn(
          { error: summary(error) },
          'events relay paused: events wait in the database until they can be queued',
        );
      }
      failures += 1;
      schedule(Math.min(options.pollIntervalMs * 2 ** failures, maxBackoffMs));
    }
  }

  return {
    relayAll,
    start() {
      if (!stopped) return;
      stopped = false;
      schedule(0);
    },
    nudge() {
      // While publishing fails, the back-off decides (a nudge per request would hammer it).
      if (!stopped && failures === 0) schedule(0);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => undefined);
    },
  };
}

/** The events of `ids` that are still kept, in the order they were recorded. */
export async function readEvents(db: Db, ids: readonly string[]): Promise<DomainEvent[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .select()
    .from(events)
    .where(inArray(events.id, [...ids]))
    .orderBy(asc(events.position));
  return rows.map(toEvent);
}
