import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Config } from './config/index.js';
import type { Database, DatabaseConnection, Db } from './db/client.js';
import { listen } from './db/notifications.js';
import type { JobBackendSettings } from './jobs/backend.js';
import {
  createJobQueue,
  type JobHandlers,
  type JobQueue,
  type JobRun,
  type WorkerSettings,
} from './jobs/queue.js';
import type { Change, Changes } from './lib/changes.js';
import { withTimeout } from './lib/timeout.js';
import { livePublisher, type LiveBus } from './live-bus.js';
import type { LoginLimits } from './modules/auth/login-limits.js';
import type { EmailDelivery } from './modules/email/delivery.js';
import { createEventsRelay } from './modules/events/outbox.js';
import type { DomainEvent } from './modules/events/types.js';
import { deleteEndedRows } from './modules/housekeeping/ended-rows.js';
import type { ScheduleAttempt, WebhookDelivery } from './modules/webhooks/delivery.js';
import type { BackgroundTask } from './plugins/background.js';

/**
 * The app's jobs: what each is called and carries, who runs it, and when the periodic
 * ones run. Composed here for the API (JOBS_IN_PROCESS) and the worker process alike.
 */
export interface AppJobs {
  /** A committed event, put in the queue by the relay (job id: `event-<event id>`). */
  event: DomainEvent;
  'webhook-delivery': { deliveryId: string };
  /** Scheduled: expired login-failure counters. */
  'login-failures-cleanup': Record<string, never>;
  /** Scheduled: ended sessions and used or expired email tokens. */
  housekeeping: Record<string, never>;
  /** Scheduled: webhook attempts whose jobs were lost (queue outage) are queued again. */
  'webhook-sweep': Record<string, never>;
  /**
   * Sends the email outbox's due emails: asked for after a commit that queued mail
   * (emailNudge), and scheduled every EMAIL_POLL_INTERVAL for the rest (retries, a lost
   * nudge).
   */
  'email-delivery': Record<string, never>;
}

export type AppJobQueue = JobQueue<AppJobs>;

/**
 * How long a job's lock lasts and how often the workers look for expired ones: BullMQ's
 * defaults (30 s each) unless a test shortens them to see a dead worker's job taken over.
 */
export type JobLocks = Pick<WorkerSettings, 'lockDurationMs' | 'stalledIntervalMs'>;

/** The jobs that carry events to their receivers: the webhooks' handlers. */
export type EventJobHandlers = Pick<
  JobHandlers<AppJobs>,
  'event' | 'webhook-delivery' | 'webhook-sweep'
>;

/**
 * The job queue of a process, opened at its first use (an API that leaves the jobs to the
 * worker only enqueues: an email's nudge, an admin's redelivery; the jobs of this process
 * once it is ready), and again at the next use after an open that failed. Closed with the app.
 */
export interface QueueHandle {
  get(): Promise<AppJobQueue>;
}

export function queueHandle(
  app: FastifyInstance,
  config: Config,
  database: Database,
  options: QueueOptions = {},
): QueueHandle {
  let queue: Promise<AppJobQueue> | undefined;
  app.addHook('onClose', async () => {
    const open = await queue?.catch(() => undefined);
    await open?.close();
  });
  return {
    get() {
      if (!queue) {
        queue = openJobQueue(config, database, options);
        // A failed open is tried again at the next use.
        queue.catch(() => (queue = undefined));
      }
      return queue;
    },
  };
}

/** Puts webhook attempts on the queue: a job per attempt, its id the attempt's. */
export function scheduleAttempts(handle: QueueHandle): ScheduleAttempt {
  return async (deliveryId, jobId, delayMs) => {
    const queue = await handle.get();
    await queue.enqueue('webhook-delivery', { deliveryId }, { id: jobId, delayMs });
  };
}

/** The webhooks' jobs: an event's fan-out, one attempt, the sweep of lost attempts. */
export function eventJobHandlers(delivery: WebhookDelivery): EventJobHandlers {
  return {
    event: (event) => delivery.dispatch(event),
    'webhook-delivery': ({ deliveryId }) => delivery.attempt(deliveryId),
    'webhook-sweep': () => delivery.sweep(),
  };
}

/** The key that coalesces the nudged `email-delivery` jobs (see EnqueueOptions). */
export const EMAIL_NUDGE_KEY = 'email-delivery';

/** How long a nudge waits for the queue to take its job (a queue that does not answer). */
const NUDGE_TIMEOUT_MS = 5000;

/**
 * What a commit that queued mail calls (AccountMail.nudge): an `email-delivery` job at
 * once, so that the mail leaves within moments. Without an id of its own and coalesced: a
 * burst of sign-ups makes one job waiting, plus at most one more while one runs, never a
 * job per request; and one asked for during a run is not lost, as it would be with a
 * fixed job id (taken by the running job). One enqueue at a time per process: those asked
 * for meanwhile make one more after it. When the queue does not take it, the request does
 * not fail: the scheduled run sends the mail (within EMAIL_POLL_INTERVAL); a warning once
 * per outage. EMAIL_POLL_INTERVAL=0: nothing (only `deliverDue` sends; tests).
 */
export function emailNudge(
  handle: QueueHandle,
  config: Config,
  log: FastifyBaseLogger,
): () => void {
  if (config.email.pollIntervalMs === 0) return () => undefined;
  let failing = false;
  let inFlight = false;
  let again = false;
  const taken = () => {
    if (!failing) return;
    failing = false;
    log.info('email delivery jobs are queued again');
  };
  const refused = (error: unknown) => {
    if (failing) return;
    failing = true;
    log.warn(
      { message: error instanceof Error ? error.message : String(error) },
      'could not queue an email delivery job; the scheduled delivery sends the mail',
    );
  };
  const enqueue = () => {
    inFlight = true;
    const queued = handle
      .get()
      .then((queue) => queue.enqueue('email-delivery', {}, { coalesce: EMAIL_NUDGE_KEY }));
    void withTimeout(queued, NUDGE_TIMEOUT_MS, 'the job queue did not answer')
      .then(taken, refused)
      .finally(() => {
        inFlight = false;
        if (!again) return;
        again = false;
        enqueue();
      });
  };
  return () => {
    if (inFlight) again = true;
    else enqueue();
  };
}

export interface QueueOptions {
  /** On PostgreSQL: the size of the queue's and the worker's pools (BullMQ's default: 4). */
  poolMax?: number;
}

/** Redis when there is one (REDIS_URL), else the app's own database. */
export function jobBackendOf(
  config: Config,
  database: Database,
  options: QueueOptions = {},
): JobBackendSettings {
  return config.redis
    ? { kind: 'redis', url: config.redis.url, keyPrefix: config.redis.keyPrefix }
    : { kind: 'postgres', connection: database.connection, ...options };
}

export function openJobQueue(
  config: Config,
  database: Database,
  options: QueueOptions = {},
): Promise<AppJobQueue> {
  return createJobQueue<AppJobs>(jobBackendOf(config, database, options));
}

/**
 * The periodic jobs, as job schedulers: every instance declares them, one worker of all
 * runs each tick. Ended rows are deleted a day after their end, a batch every ten
 * minutes; login-failure counters once their window is over; the email outbox is looked
 * at every EMAIL_POLL_INTERVAL (0: never, and a scheduler declared before is removed),
 * its runs not kept (one every 2 s by default).
 */
function schedules(config: Config) {
  const cleanupEveryMs = Math.min(Math.max(config.loginLimit.windowSeconds, 60), 3600) * 1000;
  const emailEveryMs = config.email.pollIntervalMs;
  return [
    { name: 'login-failures-cleanup', everyMs: cleanupEveryMs },
    { name: 'housekeeping', everyMs: 10 * 60_000 },
    { name: 'webhook-sweep', everyMs: 60_000 },
    { name: 'email-delivery', everyMs: emailEveryMs, discardCompleted: true },
  ] as const;
}

/** Every job's handler: the housekeeping's here, the events' given by the composition. */
export function appJobHandlers(parts: {
  config: Config;
  db: Db;
  loginLimits: LoginLimits;
  events: EventJobHandlers;
  email: EmailDelivery;
}): JobHandlers<AppJobs> {
  const { config, db } = parts;
  return {
    ...parts.events,
    'login-failures-cleanup': () => parts.loginLimits.deleteExpired(),
    housekeeping: () =>
      deleteEndedRows(db, { idleTimeoutSeconds: config.sessions.idleTimeoutSeconds }),
    'email-delivery': () => parts.email.runJob(),
  };
}

/** The channel events are notified on at commit (drizzle/0008_events_notify.sql). */
export const EVENTS_CHANNEL = 'events_recorded';

/**
 * The relay, the workers and the schedulers, started and stopped together. A commit that
 * recorded events wakes the relay at once (LISTEN on EVENTS_CHANNEL, whichever process
 * committed); EVENTS_RELAY_INTERVAL's poll is the safety net. On stop the
 * relay finishes its batch, and the workers get SHUTDOWN_TIMEOUT to finish the jobs in
 * hand; a job still running then is left to stalled-job recovery (its lock expires and
 * another worker runs it again).
 */
interface JobsParts {
  config: Config;
  db: Db;
  connection: DatabaseConnection;
  /** Opens the queue (rejects while its backend does not answer: tried again). */
  open: () => Promise<AppJobQueue>;
  handlers: JobHandlers<AppJobs>;
  onRun: (run: JobRun) => void;
  locks?: JobLocks | undefined;
  /** Told of each batch the relay takes (the live updates' bus). */
  onTaken?: ((events: DomainEvent[]) => void) | undefined;
}

/** How long the jobs wait before they try again to open a queue that did not open. */
const REOPEN_DELAY_MS = 5000;

export function jobsTask(parts: JobsParts): BackgroundTask {
  return {
    name: 'jobs',
    start(log) {
      // The queue opens here, once the app is ready and its database migrated (an embedded
      // database is not up while the app is built), and again a while later if it failed.
      let stopped = false;
      let timer: NodeJS.Timeout | undefined;
      let stop: (() => Promise<void>) | undefined;
      const begin = async () => {
        try {
          const queue = await parts.open();
          if (!stopped) stop = runJobs(parts, queue, log);
        } catch (error) {
          if (stopped) return;
          log.warn({ err: error }, 'the job queue did not open; trying again in 5 s');
          timer = setTimeout(() => void begin(), REOPEN_DELAY_MS);
          timer.unref();
        }
      };
      void begin();
      return async () => {
        stopped = true;
        clearTimeout(timer);
        await stop?.();
      };
    },
  };
}

/** The relay, the worker and the schedules on an open queue; returns what stops them. */
function runJobs(
  parts: JobsParts,
  queue: AppJobQueue,
  log: FastifyBaseLogger,
): () => Promise<void> {
  const { config } = parts;
  const relay = createEventsRelay({
    db: parts.db,
    publish: (events) =>
      queue.enqueueAll(
        events.map((event) => ({ name: 'event', payload: event, id: `event-${event.id}` })),
      ),
    log: log.child({ component: 'events relay' }),
    pollIntervalMs: config.jobs.relayIntervalMs,
    ...(parts.onTaken ? { onTaken: parts.onTaken } : {}),
  });
  relay.start();
  const listener = listen({
    connection: parts.connection,
    channel: EVENTS_CHANNEL,
    onNotify: () => relay.nudge(),
    onLost: (error) =>
      log.warn(
        { message: error.message },
        'events relay: lost its LISTEN connection; polling until it is back',
      ),
    onBack: () => log.info('events relay: listening again'),
  });
  const worker = queue.work(parts.handlers, {
    ...parts.locks,
    concurrency: config.jobs.concurrency,
    onRun: (run, error) => {
      parts.onRun(run);
      if (error) log.warn({ job: run.name, err: error }, 'job failed; it will be retried');
    },
    onError: (error) => log.warn({ message: error.message }, 'job worker: connection error'),
  });
  const stopScheduling = declareSchedules(queue, config, log);
  return async () => {
    stopScheduling();
    await listener.close();
    await relay.stop();
    const how = await worker.close(config.shutdownTimeoutMs);
    if (how === 'abandoned') {
      log.warn('jobs still running at shutdown: another worker runs them again');
    }
  };
}

/** Declares the schedulers, again a minute later while the queue does not answer. */
function declareSchedules(queue: AppJobQueue, config: Config, log: FastifyBaseLogger) {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const declare = async () => {
    try {
      for (const { name, everyMs, ...options } of schedules(config)) {
        if (everyMs === 0) await queue.unschedule(name);
        else await queue.schedule(name, everyMs, {}, options);
      }
    } catch (error) {
      if (stopped) return;
      log.warn({ err: error }, 'scheduling the periodic jobs failed; trying again in a minute');
      timer = setTimeout(() => void declare(), 60_000);
      timer.unref();
    }
  };
  void declare();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/**
 * The jobs run by this process (the worker, or the API with JOBS_IN_PROCESS): the task that
 * opens the queue once the app is ready, then runs the relay, the workers and the schedulers.
 */
export function openJobWork(
  app: FastifyInstance,
  config: Config,
  database: Database,
  services: {
    loginLimits: LoginLimits;
    webhookDelivery: WebhookDelivery;
    email: { delivery: EmailDelivery };
  },
  handle: QueueHandle,
  options: {
    locks?: JobLocks | undefined;
    /** Where the relayed events are announced to the API instances' sockets. */
    live?: LiveBus | undefined;
    /** The response cache, told again of what each relayed event changed. */
    cache?: Changes | undefined;
  } = {},
): BackgroundTask {
  const handlers = appJobHandlers({
    config,
    db: database.db,
    loginLimits: services.loginLimits,
    events: eventJobHandlers(services.webhookDelivery),
    email: services.email.delivery,
  });
  return jobsTask({
    config,
    db: database.db,
    connection: database.connection,
    open: () => handle.get(),
    handlers,
    onRun: (run) => app.metrics.jobRun(run),
    locks: options.locks,
    onTaken: relayListeners(
      options.live && livePublisher(options.live, app.log.child({ component: 'live' })),
      options.cache && ((events) => void options.cache!.changed(...changesOfEvents(events))),
    ),
  });
}

/** Every listener given, each told of each batch; none when none is given. */
function relayListeners(
  ...listeners: (((events: DomainEvent[]) => void) | undefined)[]
): ((events: DomainEvent[]) => void) | undefined {
  const given = listeners.filter((listener) => listener !== undefined);
  if (given.length === 0) return undefined;
  return (events) => {
    for (const listener of given) listener(events);
  };
}

/**
 * What relayed events changed of what readers see: the response cache's second notice of
 * them. The change itself told the cache before its response; this one, a few milliseconds
 * later from wherever the relay runs, drops those answers on every instance even when the
 * first could not reach Redis. (Renames and an edit's old slug make no event: only the first
 * notice tells of them.)
 */
export function changesOfEvents(events: readonly DomainEvent[]): Change[] {
  return events.flatMap((event): Change[] => {
    const id = event.subjectId;
    if (event.type.startsWith('post.')) {
      const slug = (event.payload as { slug?: unknown } | null)?.slug;
      return [{ kind: 'post', id, slugs: typeof slug === 'string' ? [slug] : [], listed: true }];
    }
    if (event.type === 'user.created') return [{ kind: 'user', id, author: false }];
    if (event.type === 'user.deleted') return [{ kind: 'user', id, author: true }];
    return [];
  });
}
