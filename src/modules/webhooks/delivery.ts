import type { WebhookAttempt, WebhookAttemptResult } from '../../lib/webhooks/index.js';
import { envelopeOf, type PayloadCheck } from '../events/repository.js';
import { testEventType, type DomainEvent } from '../events/types.js';
import type { ClaimedAttempt, DeliveriesRepository } from './deliveries-repository.js';

/**
 * Sends one signed attempt (src/lib/webhooks' sendWebhook with the process's
 * address-checking dispatcher: the composition passes it in). Never throws.
 */
export type WebhookSend = (attempt: WebhookAttempt) => Promise<WebhookAttemptResult>;

/** Puts an attempt of a delivery on the queue, to run after `delayMs`. */
export type ScheduleAttempt = (deliveryId: string, jobId: string, delayMs: number) => Promise<void>;

export type AttemptResult = 'succeeded' | 'retry' | 'failed' | 'skipped' | 'busy';

export interface WebhookDeliveryOptions {
  deliveries: DeliveriesRepository;
  send: WebhookSend;
  schedule: ScheduleAttempt;
  /** The wait before the next attempt after `attemptsMade` attempts; null: give up. */
  retryDelayMs: (attemptsMade: number) => number | null;
  /** An endpoint failing without a success for this long is disabled. */
  disableAfterMs: number;
  /** Attempts in flight to one endpoint from this process at most. */
  perEndpointConcurrency: number;
  /**
   * How long a claimed attempt is kept from other workers: longer than an attempt can take
   * (its deadline, then recording it). A worker that dies mid-attempt leaves it to the
   * others once this is over. Default 2 minutes.
   */
  leaseMs?: number | undefined;
  /** Checks a body against the contract (development and tests); throws when it breaks it. */
  checkBody?: PayloadCheck | undefined;
  /** Told of every attempt's outcome (metrics). */
  onAttempt?:
    | ((result: 'succeeded' | 'retry' | 'failed', durationMs: number, sinceEventMs: number) => void)
    | undefined;
  /** Told when an endpoint is disabled for failing (admins are told through it). */
  onDisabled?: ((endpointId: string, url: string) => Promise<void> | void) | undefined;
}

export interface WebhookDelivery {
  /**
   * Makes the event's deliveries and queues their first attempts (a job per event). Run
   * again (a job retried), it makes none twice and queues the same attempts (same job
   * ids), so nothing is sent twice.
   */
  dispatch(event: DomainEvent): Promise<number>;
  /** Sends a delivery again, whatever became of it (an admin's redelivery). */
  redeliver(deliveryId: string): Promise<boolean>;
  /** One attempt of a delivery (a job per attempt). */
  attempt(deliveryId: string): Promise<AttemptResult>;
  /** Queues again the attempts whose jobs are overdue (lost with a queue outage). */
  sweep(): Promise<number>;
}

/** How long a busy endpoint's attempt waits before it asks again. */
const BUSY_DELAY_MS = 250;
/** See WebhookDeliveryOptions.leaseMs. */
const DEFAULT_LEASE_MS = 2 * 60_000;
/** An attempt is overdue when its job has not run this long after it was due. */
const OVERDUE_MS = 5 * 60_000;

/** A job id per attempt: BullMQ ids may not contain ':' nor be all digits. */
export const attemptJobId = (deliveryId: string, attempt: number, suffix = ''): string =>
  `delivery-${deliveryId}-${attempt}${suffix}`;

/** Keeps an attempt's outcome, schedules the next one or gives up, disables a failing endpoint. */
async function record(
  options: WebhookDeliveryOptions,
  attempt: ClaimedAttempt,
  outcome: WebhookAttemptResult,
): Promise<AttemptResult> {
  const { deliveries, schedule } = options;
  const facts = {
    responseStatus: outcome.status ?? null,
    responseBody: outcome.body ?? null,
    durationMs: outcome.durationMs,
    error: outcome.ok ? null : outcome.error,
  };
  if (outcome.ok) {
    await deliveries.succeeded(attempt, facts);
    options.onAttempt?.('succeeded', outcome.durationMs, Date.now() - attempt.occurredAt.getTime());
    return 'succeeded';
  }
  const delay = options.retryDelayMs(attempt.attempt);
  const retryAt = delay === null ? null : new Date(Date.now() + delay);
  await deliveries.failed(attempt, facts, retryAt);
  const failingBefore = new Date(Date.now() - options.disableAfterMs);
  if (await deliveries.disableIfFailingSince(attempt.endpointId, failingBefore)) {
    await options.onDisabled?.(attempt.endpointId, attempt.url);
  }
  if (delay === null) {
    options.onAttempt?.('failed', outcome.durationMs, Date.now() - attempt.occurredAt.getTime());
    return 'failed';
  }
  // Lost if the queue is down now: the sweep queues it again once it is overdue.
  await schedule(attempt.deliveryId, attemptJobId(attempt.deliveryId, attempt.attempt + 1), delay);
  options.onAttempt?.('retry', outcome.durationMs, Date.now() - attempt.occurredAt.getTime());
  return 'retry';
}

/**
 * A job that finds its delivery pending but not due: most often it was run again because
 * its worker died mid-attempt (stalled-job recovery), and the dead worker's lease still
 * holds the attempt. The attempt is queued again for when it is due, under that attempt's
 * own job id (so once, however many jobs find it so): the dead worker's attempt is then made
 * by another as soon as its lease is over, rather than minutes later by the sweep. Had its
 * worker not died, the outcome is recorded by then: the job finds the delivery done, or its
 * retry already queued (and queuing it again under its own id adds nothing).
 */
async function queueWhenDue(
  options: WebhookDeliveryOptions,
  deliveryId: string,
): Promise<AttemptResult> {
  const waiting = await options.deliveries.notDue(deliveryId);
  if (waiting) {
    const jobId = attemptJobId(deliveryId, waiting.attempts + 1, '-due');
    await options.schedule(deliveryId, jobId, waiting.dueInMs);
  }
  return 'skipped';
}

export function createWebhookDelivery(options: WebhookDeliveryOptions): WebhookDelivery {
  const { deliveries, send, schedule } = options;
  const inFlight = new Map<string, number>();

  return {
    async dispatch(event) {
      // A test event has its one delivery already (made with it by sendTest).
      if (event.type !== testEventType) await deliveries.fanOut(event.id, event.type);
      const unstarted = await deliveries.unstarted(event.id);
      for (const id of unstarted) await schedule(id, attemptJobId(id, 1), 0);
      return unstarted.length;
    },

    async attempt(deliveryId) {
      const endpointId = await deliveries.endpointOf(deliveryId);
      if (!endpointId) return 'skipped';
      const busy = inFlight.get(endpointId) ?? 0;
      if (busy >= options.perEndpointConcurrency) {
        // Not this worker's turn for that endpoint: the attempt waits without holding a
        // worker slot, so that one slow receiver cannot starve the others.
        await schedule(
          deliveryId,
          attemptJobId(deliveryId, 0, `-busy-${Date.now()}`),
          BUSY_DELAY_MS,
        );
        return 'busy';
      }
      inFlight.set(endpointId, busy + 1);
      try {
        const attempt = await deliveries.claim(deliveryId, options.leaseMs ?? DEFAULT_LEASE_MS);
        if (!attempt) return await queueWhenDue(options, deliveryId);
        const envelope = envelopeOf({
          type: attempt.eventType,
          occurredAt: attempt.occurredAt.toISOString(),
          payload: attempt.payload,
        });
        options.checkBody?.(attempt.eventType, envelope);
        // The `webhook-id` is the event's: the same on every retry and redelivery, so that a
        // receiver that got it once can tell.
        const outcome = await send({
          url: attempt.url,
          id: attempt.eventId,
          body: JSON.stringify(envelope),
          secrets: attempt.secrets,
        });
        return await record(options, attempt, outcome);
      } finally {
        const left = (inFlight.get(endpointId) ?? 1) - 1;
        if (left === 0) inFlight.delete(endpointId);
        else inFlight.set(endpointId, left);
      }
    },

    async redeliver(deliveryId) {
      const reopened = await deliveries.reopen(deliveryId);
      if (!reopened) return false;
      await schedule(
        deliveryId,
        attemptJobId(deliveryId, reopened.attempts + 1, `-again-${Date.now()}`),
        0,
      );
      return true;
    },

    async sweep() {
      const overdue = await deliveries.overdue(new Date(Date.now() - OVERDUE_MS), 500);
      for (const row of overdue) {
        await schedule(row.id, attemptJobId(row.id, row.attempts + 1, `-sweep-${Date.now()}`), 0);
      }
      return overdue.length;
    },
  };
}
