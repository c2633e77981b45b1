import type { FastifyBaseLogger } from 'fastify';
import type { DueEmail, OutboxRepository } from './outbox.js';
import { SEND_TIMEOUT_MS, type EmailTransport } from './transports.js';

export interface DeliveryReport {
  sent: number;
  failed: number;
}

/**
 * Sends the outbox's due emails. Every instance of the server runs one; they share the
 * outbox without ever sending one email twice (see claimDue).
 */
export interface EmailDelivery {
  /**
   * Sends everything due now, batch after batch, and says what it did. Never throws: a
   * failed email is retried later, a database that does not answer is waited for. Runs
   * one at a time: a call during a run waits for it.
   */
  deliverDue(): Promise<DeliveryReport>;
  /** Starts polling (every `pollIntervalMs`; 0: never, only deliverDue and nothing else). */
  start(): void;
  /** Runs a delivery soon, instead of at the next poll (mail has just been queued). */
  nudge(): void;
  /** Stops polling, after the batch in hand is sent and marked. */
  stop(): Promise<void>;
}

export interface DeliveryOptions {
  outbox: OutboxRepository;
  transport: EmailTransport;
  log: Pick<FastifyBaseLogger, 'info' | 'warn'>;
  pollIntervalMs: number;
  batchSize?: number;
}

export const BATCH_SIZE = 10;

/** What a log line may say about an error: no stack, no connection settings. */
function summary(error: unknown): { code?: unknown; message: string } {
  if (!(error instanceof Error)) return { message: String(error) };
  const { code } = error as Error & { code?: unknown };
  // Drizzle wraps the driver's error: its own message is the SQL, the cause says why.
  const cause = error.cause instanceof Error ? error.cause : error;
  return { code: (cause as Error & { code?: unknown }).code ?? code, message: cause.message };
}

/** What the outbox keeps of a failure: the code, if any, and the message. */
function describe(error: unknown): string {
  const { code, message } = summary(error);
  return typeof code === 'string' || typeof code === 'number' ? `${code} ${message}` : message;
}

export function createEmailDelivery(options: DeliveryOptions): EmailDelivery {
  const { outbox, transport, log, pollIntervalMs } = options;
  const batchSize = options.batchSize ?? BATCH_SIZE;
  // Long enough for a whole batch of slow sends, so that no other loop takes a claimed
  // email while this one is still sending it.
  const leaseSeconds = Math.ceil((batchSize * SEND_TIMEOUT_MS) / 1000) + 60;

  let databaseDown = false;
  const outage = (error: unknown) => {
    // Once per outage: the loop keeps polling, and every poll would say the same.
    if (databaseDown) return;
    databaseDown = true;
    log.warn(
      { error: summary(error) },
      'email delivery paused: the database does not answer; retrying at every poll',
    );
  };
  const reachable = () => {
    if (!databaseDown) return;
    databaseDown = false;
    log.info('email delivery resumed: the database answers again');
  };

  let stopping = false;

  /** Sends one claimed email and records how it went; false when the database failed. */
  async function deliver(email: DueEmail, report: DeliveryReport): Promise<boolean> {
    try {
      await transport.send(email);
    } catch (error) {
      report.failed += 1;
      log.warn(
        {
          emailId: email.id,
          kind: email.kind,
          attempts: email.attempts + 1,
          error: summary(error),
        },
        'email not delivered; it will be retried',
      );
      try {
        await outbox.markFailed(email.id, describe(error));
        return true;
      } catch (markError) {
        outage(markError);
        return false;
      }
    }
    try {
      await outbox.markSent(email.id);
    } catch (error) {
      // Sent but not marked: when its lease ends it is sent again (at least once, never lost).
      outage(error);
      return false;
    }
    report.sent += 1;
    return true;
  }

  async function run(): Promise<DeliveryReport> {
    const report: DeliveryReport = { sent: 0, failed: 0 };
    for (;;) {
      let batch: DueEmail[];
      try {
        batch = await outbox.claimDue(batchSize, leaseSeconds);
      } catch (error) {
        outage(error);
        return report;
      }
      reachable();
      // A claimed batch is always finished, stopping or not: left half-done, its emails
      // would wait for their lease to end.
      for (const email of batch) {
        if (!(await deliver(email, report))) return report;
      }
      if (batch.length < batchSize || stopping) return report;
    }
  }

  let queue: Promise<unknown> = Promise.resolve();
  const deliverDue = (): Promise<DeliveryReport> => {
    const next = queue.then(run);
    queue = next.catch(() => undefined);
    return next;
  };

  let started = false;
  let timer: NodeJS.Timeout | undefined;
  let polling = false;
  let nudged = false;
  const schedule = (delayMs: number) => {
    clearTimeout(timer);
    if (stopping) return;
    timer = setTimeout(poll, delayMs);
    // The loop never keeps the process alive on its own.
    timer.unref();
  };
  const poll = () => {
    timer = undefined;
    polling = true;
    nudged = false;
    void deliverDue().finally(() => {
      polling = false;
      schedule(nudged ? 0 : pollIntervalMs);
    });
  };

  return {
    deliverDue,
    start() {
      if (started || stopping || pollIntervalMs === 0) return;
      started = true;
      schedule(0);
    },
    nudge() {
      if (!started || stopping) return;
      if (polling) nudged = true;
      else schedule(0);
    },
    async stop() {
      stopping = true;
      clearTimeout(timer);
      await queue;
    },
  };
}
