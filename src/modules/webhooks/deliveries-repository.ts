import { and, eq, lte, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { events } from '../../db/schema/events.js';
import { webhookDeliveries, webhookEndpoints } from '../../db/schema/webhooks.js';
import type { DomainEvent } from '../events/types.js';

/** An attempt a worker has claimed: what it needs to send it. */
export interface ClaimedAttempt {
  deliveryId: string;
  /** This attempt's number, from 1. */
  attempt: number;
  endpointId: string;
  url: string;
  /** The secrets to sign with: the current one, and the previous one during a rotation. */
  secrets: string[];
  eventId: string;
  eventType: DomainEvent['type'];
  occurredAt: Date;
  payload: unknown;
}

/** What an attempt came to, as the delivery row keeps it. */
export interface AttemptRecord {
  responseStatus: number | null;
  responseBody: string | null;
  durationMs: number;
  error: string | null;
}

/**
 * The worker's side of `webhook_deliveries` and `webhook_endpoints` (the webhooks module
 * owns both, src/db/owners.ts): the fan-out of an event, the claim of an attempt, its
 * outcome, and the state of an endpoint that keeps failing. The admin side is
 * repository.ts.
 */
export interface DeliveriesRepository {
  /**
   * One pending delivery per enabled endpoint subscribed to the event's type, made once
   * whatever the number of calls (the unique pair endpoint, event); answers the ids of the
   * rows this call made.
   */
  fanOut(eventId: string, eventType: string): Promise<string[]>;
  /** The endpoint a delivery goes to; null when there is no such delivery. */
  endpointOf(deliveryId: string): Promise<string | null>;
  /** The event's deliveries not attempted yet: the first attempts to queue. */
  unstarted(eventId: string): Promise<string[]>;
  /**
   * Begins the next attempt of a pending delivery whose attempt is due: moves `attempts`
   * from what it was to one more, in one statement, so that of two workers holding the
   * same job only one sends. The attempt's lease: its next attempt is due `leaseMs` from
   * now (until the outcome is recorded), so no other worker makes one meanwhile. Null when
   * there is nothing to send (done, not due, taken, or its endpoint disabled or gone).
   */
  claim(deliveryId: string, leaseMs: number): Promise<ClaimedAttempt | null>;
  /**
   * A pending delivery whose next attempt is not due yet (one in a worker's hands, under
   * its lease, or a retry waiting for its time): its attempts so far and how long until the
   * next is due. Null otherwise.
   */
  notDue(deliveryId: string): Promise<{ attempts: number; dueInMs: number } | null>;
  succeeded(attempt: ClaimedAttempt, record: AttemptRecord): Promise<void>;
  /** A failed attempt with another to come at `retryAt`, or none (null): failed for good. */
  failed(attempt: ClaimedAttempt, record: AttemptRecord, retryAt: Date | null): Promise<void>;
  /**
   * Disables the endpoint (reason 'failing') if it has failed without a success since
   * before `failingBefore`; says whether this call disabled it.
   */
  disableIfFailingSince(endpointId: string, failingBefore: Date): Promise<boolean>;
  /**
   * Makes a delivery pending again with its next attempt due now (an admin's redelivery),
   * whatever its status; answers its attempts so far, or null when there is no such
   * delivery.
   */
  reopen(deliveryId: string): Promise<{ attempts: number } | null>;
  /** Pending deliveries due before `dueBefore`: their jobs may have been lost. */
  overdue(dueBefore: Date, limit: number): Promise<{ id: string; attempts: number }[]>;
}

const pendingDue = (now: ReturnType<typeof sql>) =>
  and(
    eq(webhookDeliveries.status, 'pending'),
    sql`coalesce(${webhookDeliveries.nextAttemptAt}, ${webhookDeliveries.createdAt}) <= ${now}`,
  );

/** See DeliveriesRepository.fanOut. */
async function fanOut(db: Db, eventId: string, eventType: string): Promise<string[]> {
  const result = await db.execute(sql`
    insert into ${webhookDeliveries} (endpoint_id, event_id, event_type, next_attempt_at)
    select ${webhookEndpoints.id}, ${eventId}, ${eventType}, now()
    from ${webhookEndpoints}
    where ${webhookEndpoints.enabled} and ${eventType} = any(${webhookEndpoints.eventTypes})
      -- Endpoints registered after the event was committed do not get it.
      and ${webhookEndpoints.createdAt} <= (select occurred_at from events where id = ${eventId})
    on conflict (endpoint_id, event_id) do nothing
    returning id`);
  return (result as { rows: { id: string }[] }).rows.map((row) => row.id);
}

/**
 * A delivery of an event to one endpoint (a test event), in the caller's transaction: the
 * event's job queues its first attempt.
 */
export async function insertDelivery(
  tx: Db,
  delivery: { endpointId: string; eventId: string; eventType: string },
): Promise<string> {
  const [row] = await tx
    .insert(webhookDeliveries)
    .values({ ...delivery, nextAttemptAt: sql`now()` })
    .returning({ id: webhookDeliveries.id });
  if (!row) throw new Error('the delivery was not inserted');
  return row.id;
}

/** See DeliveriesRepository.claim. */
async function claimAttempt(
  db: Db,
  deliveryId: string,
  leaseMs: number,
): Promise<ClaimedAttempt | null> {
  // One statement: the claim (attempts n → n+1, only while due and its endpoint enabled,
  // so of two workers holding one job one sends) returns what the send needs. The lease:
  // while an attempt is in hand its next attempt is pushed past the send's longest time,
  // so that neither another run of its job nor the sweep makes another meanwhile.
  const [row] = await db
    .update(webhookDeliveries)
    .set({
      attempts: sql`${webhookDeliveries.attempts} + 1`,
      lastAttemptAt: sql`now()`,
      nextAttemptAt: sql`now() + ${leaseMs} * interval '1 millisecond'`,
      updatedAt: sql`now()`,
    })
    // A join's condition may not name the updated table: the links are in the WHERE.
    .from(webhookEndpoints)
    .innerJoin(events, sql`true`)
    .where(
      and(
        eq(webhookDeliveries.id, deliveryId),
        pendingDue(sql`now()`),
        eq(webhookEndpoints.id, webhookDeliveries.endpointId),
        eq(webhookEndpoints.enabled, true),
        eq(events.id, webhookDeliveries.eventId),
      ),
    )
    .returning({
      attempt: webhookDeliveries.attempts,
      endpointId: webhookDeliveries.endpointId,
      eventId: webhookDeliveries.eventId,
      url: webhookEndpoints.url,
      secret: webhookEndpoints.secret,
      previousSecret: sql<
        string | null
      >`case when ${webhookEndpoints.previousSecretExpiresAt} > now() then ${webhookEndpoints.previousSecret} end`,
      eventType: events.type,
      occurredAt: events.occurredAt,
      payload: events.payload,
    });
  if (!row) return null;
  return {
    deliveryId,
    attempt: row.attempt,
    endpointId: row.endpointId,
    url: row.url,
    secrets: row.previousSecret ? [row.secret, row.previousSecret] : [row.secret],
    eventId: row.eventId,
    // The events table holds only the types it was given (src/modules/events).
    eventType: row.eventType as DomainEvent['type'],
    occurredAt: row.occurredAt,
    payload: row.payload,
  };
}

/** See DeliveriesRepository.notDue. */
async function notDue(
  db: Db,
  deliveryId: string,
): Promise<{ attempts: number; dueInMs: number } | null> {
  const [row] = await db
    .select({
      attempts: webhookDeliveries.attempts,
      dueInMs: sql<number>`ceil(extract(epoch from ${webhookDeliveries.nextAttemptAt} - now()) * 1000)::int`,
    })
    .from(webhookDeliveries)
    .where(
      and(
        eq(webhookDeliveries.id, deliveryId),
        eq(webhookDeliveries.status, 'pending'),
        sql`${webhookDeliveries.nextAttemptAt} > now()`,
      ),
    );
  return row ?? null;
}

/** See DeliveriesRepository.disableIfFailingSince. */
async function disableIfFailingSince(
  db: Db,
  endpointId: string,
  failingBefore: Date,
): Promise<boolean> {
  const rows = await db
    .update(webhookEndpoints)
    .set({ enabled: false, disabledReason: 'failing', updatedAt: sql`now()` })
    .where(
      and(
        eq(webhookEndpoints.id, endpointId),
        eq(webhookEndpoints.enabled, true),
        lte(webhookEndpoints.failingSince, failingBefore),
      ),
    )
    .returning({ id: webhookEndpoints.id });
  return rows.length > 0;
}

export function createDeliveriesRepository(db: Db): DeliveriesRepository {
  return {
    fanOut: (eventId, eventType) => fanOut(db, eventId, eventType),

    async endpointOf(deliveryId) {
      const [row] = await db
        .select({ endpointId: webhookDeliveries.endpointId })
        .from(webhookDeliveries)
        .where(eq(webhookDeliveries.id, deliveryId));
      return row?.endpointId ?? null;
    },

    async unstarted(eventId) {
      const rows = await db
        .select({ id: webhookDeliveries.id })
        .from(webhookDeliveries)
        .where(
          and(
            eq(webhookDeliveries.eventId, eventId),
            eq(webhookDeliveries.status, 'pending'),
            eq(webhookDeliveries.attempts, 0),
          ),
        );
      return rows.map((row) => row.id);
    },

    claim: (deliveryId, leaseMs) => claimAttempt(db, deliveryId, leaseMs),

    notDue: (deliveryId) => notDue(db, deliveryId),

    async succeeded(attempt, record) {
      await db.transaction(async (tx) => {
        await tx
          .update(webhookDeliveries)
          .set({ status: 'succeeded', nextAttemptAt: null, ...columns(record) })
          .where(eq(webhookDeliveries.id, attempt.deliveryId));
        await tx
          .update(webhookEndpoints)
          .set({ failingSince: null })
          .where(eq(webhookEndpoints.id, attempt.endpointId));
      });
    },

    async failed(attempt, record, retryAt) {
      await db.transaction(async (tx) => {
        await tx
          .update(webhookDeliveries)
          .set({
            status: retryAt ? 'pending' : 'failed',
            nextAttemptAt: retryAt,
            ...columns(record),
          })
          .where(eq(webhookDeliveries.id, attempt.deliveryId));
        await tx
          .update(webhookEndpoints)
          .set({ failingSince: sql`coalesce(${webhookEndpoints.failingSince}, now())` })
          .where(eq(webhookEndpoints.id, attempt.endpointId));
      });
    },

    disableIfFailingSince: (endpointId, failingBefore) =>
      disableIfFailingSince(db, endpointId, failingBefore),

    async reopen(deliveryId) {
      const [row] = await db
        .update(webhookDeliveries)
        .set({ status: 'pending', nextAttemptAt: sql`now()`, updatedAt: sql`now()` })
        .where(eq(webhookDeliveries.id, deliveryId))
        .returning({ attempts: webhookDeliveries.attempts });
      return row ?? null;
    },

    async overdue(dueBefore, limit) {
      return db
        .select({ id: webhookDeliveries.id, attempts: webhookDeliveries.attempts })
        .from(webhookDeliveries)
        .where(
          and(
            eq(webhookDeliveries.status, 'pending'),
            lte(webhookDeliveries.nextAttemptAt, dueBefore),
          ),
        )
        .orderBy(webhookDeliveries.nextAttemptAt)
        .limit(limit);
    },
  };
}

/** The record of an attempt, cut to the columns' sizes. */
function columns(record: AttemptRecord) {
  return {
    responseStatus: record.responseStatus,
    responseBody: record.responseBody?.slice(0, 1024) ?? null,
    durationMs: Math.round(record.durationMs),
    lastError: record.error?.slice(0, 500) ?? null,
    updatedAt: sql`now()`,
  };
}
