import type { FastifyBaseLogger } from 'fastify';
import type { DeadReason, DueEmail, OutboxRepository } from './outbox.js';
import { SEND_TIMEOUT_MS, type EmailTransport } from './transports.js';

export interface DeliveryReport {
  sent: number;
  /** Failed attempts, those that made an email dead included. */
  failed: number;
  /** Emails given up on: failed for the last allowed time, or expired unsent. */
  dead: number;
}

/**
 * Sends the outbox's due emails: the handler of the `email-delivery` job (src/job-work.ts),
 * which runs on whichever worker takes it. Any number of runs, in one process or in
 * several, share the outbox without ever sending one email twice (see claimDue).
 */
export interface EmailDelivery {
  /**
   * Sends everything due now, batch after batch, and says what it did. Never throws: a
   * failed email is retried later, a database that does not answer is waited for. Runs
   * one at a time: a call during a run waits for it. After `stop()`, does nothing.
   */
  deliverDue(): Promise<DeliveryReport>;
  /**
   * The job's run: deliverDue, unless a job's run is under way in this process already;
   * then that run takes one more look once its own is done, and this returns null at once
   * (a job never holds a worker's slot waiting for another).
   */
  runJob(): Promise<DeliveryReport | null>;
  /** Ends the run under way after the batch in hand is sent and marked; no run after it. */
  stop(): Promise<void>;
}

export interface DeliveryOptions {
  outbox: OutboxRepository;
  transport: EmailTransport;
  log: Pick<FastifyBaseLogger, 'info' | 'warn' | 'error'>;
  /** Failed attempts after which an email is dead (EMAIL_MAX_ATTEMPTS). */
  maxAttempts?: number;
  /** Told of every email given up on (metrics). */
  onDead?: (reason: DeadReason, count: number) => void;
  batchSize?: number;
}

export const BATCH_SIZE = 10;
export const MAX_ATTEMPTS = 12;

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

/** What one run needs: the factory's dependencies and the delivery's state. */
interface Run {
  outbox: OutboxRepository;
  transport: EmailTransport;
  log: DeliveryOptions['log'];
  batchSize: number;
  maxAttempts: number;
  leaseSeconds: number;
  onDead: (reason: DeadReason, count: number) => void;
  outage: (error: unknown) => void;
  reachable: () => void;
  stopping: () => boolean;
}

/** Logs a database outage once when it begins and once when it ends. */
function outageLog(log: DeliveryOptions['log']): Pick<Run, 'outage' | 'reachable'> {
  let databaseDown = false;
  const outage = (error: unknown) => {
    // Once per outage: runs go on (the job's schedule), and every one would say the same.
    if (databaseDown) return;
    databaseDown = true;
    log.warn(
      { error: summary(error) },
      'email delivery paused: the database does not answer; retrying at every run',
    );
  };
  const reachable = () => {
    if (!databaseDown) return;
    databaseDown = false;
    log.info('email delivery resumed: the database answers again');
  };
  return { outage, reachable };
}

/** Records a failed send; false when the database failed. */
async function recordFailure(
  ctx: Run,
  email: DueEmail,
  error: unknown,
  report: DeliveryReport,
): Promise<boolean> {
  const { outbox, log, maxAttempts } = ctx;
  report.failed += 1;
  const facts = {
    emailId: email.id,
    kind: email.kind,
    attempts: email.attempts + 1,
    error: summary(error),
  };
  let outcome: 'retry' | 'dead';
  try {
    outcome = await outbox.markFailed(email.id, describe(error), maxAttempts);
  } catch (markError) {
    log.warn(facts, 'email not delivered; it will be retried');
    ctx.outage(markError);
    return false;
  }
  if (outcome === 'dead') {
    report.dead += 1;
    log.error(
      { ...facts, maxAttempts },
      'email not delivered, for the last time: given up on (dead)',
    );
    ctx.onDead('attempts', 1);
  } else {
    log.warn(facts, 'email not delivered; it will be retried');
  }
  return true;
}

/** Sends one claimed email and records how it went; false when the database failed. */
async function deliver(ctx: Run, email: DueEmail, report: DeliveryReport): Promise<boolean> {
  try {
    await ctx.transport.send(email);
  } catch (error) {
    return recordFailure(ctx, email, error, report);
  }
  try {
    await ctx.outbox.markSent(email.id);
  } catch (error) {
    // Sent but not marked: when its lease ends it is sent again (at least once, never lost).
    ctx.outage(error);
    return false;
  }
  report.sent += 1;
  return true;
}

/** Gives up on the emails whose links expired unsent; false when the database failed. */
async function expireStale(ctx: Run, report: DeliveryReport): Promise<boolean> {
  try {
    const expired = await ctx.outbox.expireStale();
    if (expired > 0) {
      report.dead += expired;
      ctx.log.warn(
        { count: expired },
        'emails given up on: their links expired before they were sent',
      );
      ctx.onDead('expired', expired);
    }
  } catch (error) {
    ctx.outage(error);
    return false;
  }
  return true;
}

async function run(ctx: Run): Promise<DeliveryReport> {
  const report: DeliveryReport = { sent: 0, failed: 0, dead: 0 };
  // First, so that no row keeps a link past its expiry longer than a poll interval.
  if (!(await expireStale(ctx, report))) return report;
  for (;;) {
    let batch: DueEmail[];
    try {
      batch = await ctx.outbox.claimDue(ctx.batchSize, ctx.leaseSeconds);
    } catch (error) {
      ctx.outage(error);
      return report;
    }
    ctx.reachable();
    // A claimed batch is always finished, stopping or not: left half-done, its emails
    // would wait for their lease to end.
    for (const email of batch) {
      if (!(await deliver(ctx, email, report))) return report;
    }
    if (batch.length < ctx.batchSize || ctx.stopping()) return report;
  }
}

export function createEmailDelivery(options: DeliveryOptions): EmailDelivery {
  const { outbox, transport, log } = options;
  const batchSize = options.batchSize ?? BATCH_SIZE;
  let stopping = false;
  const ctx: Run = {
    outbox,
    transport,
    log,
    batchSize,
    maxAttempts: options.maxAttempts ?? MAX_ATTEMPTS,
    // Long enough for a whole batch of slow sends, so that no other run takes a claimed
    // email while this one is still sending it.
    leaseSeconds: Math.ceil((batchSize * SEND_TIMEOUT_MS) / 1000) + 60,
    onDead: options.onDead ?? (() => undefined),
    ...outageLog(log),
    stopping: () => stopping,
  };

  let queue: Promise<unknown> = Promise.resolve();
  const deliverDue = (): Promise<DeliveryReport> => {
    const next = queue.then(() => (stopping ? { sent: 0, failed: 0, dead: 0 } : run(ctx)));
    queue = next.catch(() => undefined);
    return next;
  };

  let jobRunning = false;
  let lookAgain = false;
  return {
    deliverDue,
    async runJob() {
      if (jobRunning) {
        lookAgain = true;
        return null;
      }
      jobRunning = true;
      try {
        const report = await deliverDue();
        // Mail committed while the run was under way, whose job came here meanwhile.
        while (lookAgain && !stopping) {
          lookAgain = false;
          const more = await deliverDue();
          report.sent += more.sent;
          report.failed += more.failed;
          report.dead += more.dead;
        }
        return report;
      } finally {
        jobRunning = false;
        lookAgain = false;
      }
    },
    async stop() {
      stopping = true;
      await queue;
    },
  };
}
