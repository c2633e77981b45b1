import type { Job, JobsOptions, Processor, QueueOptions, Worker, WorkerOptions } from 'bullmq';
import { withTimeout } from '../lib/timeout.js';
import { openBackend, type Backend, type JobBackendSettings } from './backend.js';

/**
 * The job queue: one BullMQ queue on Redis (REDIS_URL) or on PostgreSQL (the app's
 * database, tables in a schema of their own), typed by a map of job names to payloads.
 * It knows nothing of the modules: the composition passes the handlers in.
 */

/** Job name → payload. Payloads are JSON: what the queue stores is what the handler gets. */
export type JobMap = object;
export type JobName<J extends JobMap> = keyof J & string;

/** What a handler knows of its job besides the payload. */
export interface JobContext {
  readonly id: string;
  /** 1 on the first run, 2 on the first retry, … */
  readonly attempt: number;
}

export type JobHandler<P> = (payload: P, job: JobContext) => Promise<unknown>;
/** One handler for every job name: a missing one is a compile error. */
export type JobHandlers<J extends JobMap> = { readonly [K in JobName<J>]: JobHandler<J[K]> };

export type EnqueueOptions =
  | {
      /**
       * The job's id: a second job with the same id is not added while the first is kept (a
       * day after it finished), which is what makes a relay's retries harmless. No `:`, not
       * all digits (BullMQ's rules).
       */
      id: string;
      delayMs?: number;
    }
  | {
      /**
       * No id of its own; jobs with the same key coalesce: while one waits, another is not
       * added; while one runs, one more (the last) is kept to run after it (BullMQ's
       * deduplication, keepLastIfActive). Such a job is deleted once it has run.
       */
      coalesce: string;
    };

export interface ScheduleOptions {
  /** Each run is deleted once done, not kept a day (a job scheduled every few seconds). */
  discardCompleted?: boolean;
}

export interface JobRun {
  name: string;
  outcome: 'completed' | 'failed';
  seconds: number;
}

export interface WorkerSettings {
  concurrency: number;
  /** How long a job's lock lasts unless renewed (half-way) by its running worker. */
  lockDurationMs?: number;
  /** How often a worker looks for jobs whose lock expired (their worker died). */
  stalledIntervalMs?: number;
  /** Told of every run (metrics, logs). */
  onRun?: (run: JobRun, error?: unknown) => void;
  /** Problems of the worker's connection that no job is waiting for. */
  onError?: (error: Error) => void;
}

export interface JobWorker {
  /**
   * Stops taking jobs and waits up to `timeoutMs` for those in hand. A job still running
   * then is abandoned: its lock expires and another worker runs it again (stalled-job
   * recovery), so a handler must be safe to run twice. Says which happened.
   */
  close(timeoutMs: number): Promise<'finished' | 'abandoned'>;
}

export interface JobQueue<J extends JobMap> {
  readonly backend: Backend['kind'];
  enqueue<K extends JobName<J>>(name: K, payload: J[K], options: EnqueueOptions): Promise<void>;
  /** Several jobs in one round trip (the relay's batch). */
  enqueueAll(jobs: ReadonlyArray<QueuedJob<J>>): Promise<void>;
  /**
   * Runs `name` every `everyMs` on one worker of all instances, the first time `everyMs`
   * from now: every instance may call this with the same arguments (BullMQ keeps one
   * scheduler per name, and its next run).
   */
  schedule<K extends JobName<J>>(
    name: K,
    everyMs: number,
    payload: J[K],
    options?: ScheduleOptions,
  ): Promise<void>;
  /** Removes the scheduler of `name`, if there is one (its runs stop). */
  unschedule(name: JobName<J>): Promise<void>;
  /** Starts a worker in this process that runs the jobs with `handlers`. */
  work(handlers: JobHandlers<J>, settings: WorkerSettings): JobWorker;
  /** Jobs waiting (ready or delayed), running, and failed for good, now. */
  depth(): Promise<{ waiting: number; delayed: number; active: number; failed: number }>;
  /** Resolves when the backend answers within `timeoutMs`. */
  ping(timeoutMs: number): Promise<void>;
  /** Closes the queue's connections (close the workers first). */
  close(): Promise<void>;
}

export type QueuedJob<J extends JobMap> = {
  [K in JobName<J>]: { name: K; payload: J[K]; id: string };
}[JobName<J>];

export const QUEUE_NAME = 'jobs';

/**
 * Finished jobs are kept a day (their ids dedupe a repeated enqueue meanwhile); failed ones
 * a week, for a look. A job is tried five times, 2 s, 4 s, 8 s, 16 s apart.
 */
const defaultJobOptions: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 24 * 3600 },
  removeOnFail: { age: 7 * 24 * 3600 },
};

/** BullMQ's rules for custom ids, checked here so that a bad one fails where it is made. */
export function checkJobId(id: string): string {
  if (id.includes(':') || /^\d+$/.test(id) || id.length === 0) {
    throw new Error(`job id ${JSON.stringify(id)}: no ':' and not all digits`);
  }
  return id;
}

/** A job's own options: its id (or coalescing key) and delay. */
function jobOptions(options: EnqueueOptions): JobsOptions {
  if ('coalesce' in options) {
    return {
      deduplication: { id: checkJobId(options.coalesce), keepLastIfActive: true },
      removeOnComplete: true,
    };
  }
  return { jobId: checkJobId(options.id), ...(options.delayMs ? { delay: options.delayMs } : {}) };
}

export async function createJobQueue<J extends JobMap>(
  settings: JobBackendSettings,
): Promise<JobQueue<J>> {
  const { Queue, Worker } = await import('bullmq');
  const backend = await openBackend(settings);
  const queue = new Queue(
    QUEUE_NAME,
    { ...backend.queueOptions, defaultJobOptions } as QueueOptions,
    backend.factory as never,
  );
  queue.on('error', () => undefined);
  if (backend.kind === 'postgres') {
    // BullMQ's PostgreSQL backend connects (and migrates its schema) once, and keeps the
    // outcome: a queue whose first connection failed fails every call after. Its open fails
    // instead, so that the caller opens a new one later.
    try {
      await queue.waitUntilReady();
    } catch (error) {
      await queue.close().catch(() => undefined);
      await backend.close();
      throw error;
    }
  }

  return {
    backend: backend.kind,
    async enqueue(name, payload, options) {
      await queue.add(name, payload, jobOptions(options));
    },
    async enqueueAll(jobs) {
      if (jobs.length === 0) return;
      await queue.addBulk(
        jobs.map((job) => ({
          name: job.name,
          data: job.payload,
          opts: jobOptions({ id: job.id }),
        })),
      );
    },
    async schedule(name, everyMs, payload, options = {}) {
      await queue.upsertJobScheduler(
        name,
        // The first run one interval from now, not at once (BullMQ's default for `every`):
        // a process starting on a new database does not run every periodic job during its
        // start-up, all together, each on connections of its own. A scheduler that exists
        // keeps its next run (startDate counts only for a new one).
        { every: everyMs, startDate: Date.now() + everyMs },
        {
          name,
          data: payload,
          ...(options.discardCompleted ? { opts: { removeOnComplete: true } } : {}),
        },
      );
    },
    async unschedule(name) {
      await queue.removeJobScheduler(name);
    },
    work(handlers, workerSettings) {
      const inHand = jobsInHand();
      const worker = new Worker(
        QUEUE_NAME,
        processorOf(handlers as Record<string, JobHandler<unknown>>, workerSettings.onRun, inHand),
        workerOptions(backend, workerSettings),
        backend.factory as never,
      );
      worker.on('error', (error) => workerSettings.onError?.(error));
      return { close: (timeoutMs) => closeWorker(worker, inHand, timeoutMs) };
    },
    async depth() {
      const counts = await queue.getJobCounts('wait', 'prioritized', 'delayed', 'active', 'failed');
      return {
        waiting: (counts.wait ?? 0) + (counts.prioritized ?? 0),
        delayed: counts.delayed ?? 0,
        active: counts.active ?? 0,
        failed: counts.failed ?? 0,
      };
    },
    ping: (timeoutMs) => withTimeout(backend.ping(), timeoutMs, 'the job queue did not answer'),
    async close() {
      await queue.close();
      await backend.close();
    },
  };
}

function workerOptions(backend: Backend, settings: WorkerSettings): WorkerOptions {
  return {
    ...backend.workerOptions,
    concurrency: settings.concurrency,
    ...(settings.lockDurationMs ? { lockDuration: settings.lockDurationMs } : {}),
    ...(settings.stalledIntervalMs ? { stalledInterval: settings.stalledIntervalMs } : {}),
  } as WorkerOptions;
}

/**
 * No new job; then the jobs in hand get `timeoutMs`. A forced close stops renewing the
 * locks of those still running, so they expire and another worker takes them.
 */
async function closeWorker(
  worker: Worker,
  inHand: ReturnType<typeof jobsInHand>,
  timeoutMs: number,
): Promise<'finished' | 'abandoned'> {
  await worker.pause(true);
  const finished = await withTimeout(inHand.none(), timeoutMs, 'jobs running').then(
    () => true,
    () => false,
  );
  if (finished) {
    // Not forced: the jobs just finished are recorded as completed before it closes. A
    // forced close could leave one active, to be run again by another worker once its lock
    // expired.
    const closed = await withTimeout(worker.close(), timeoutMs, 'closing').then(
      () => true,
      () => false,
    );
    if (closed) return 'finished';
  }
  await worker.close(true);
  return finished ? 'finished' : 'abandoned';
}

/** Counts the jobs a worker is running, and tells when it runs none. */
function jobsInHand() {
  let running = 0;
  let idle: Array<() => void> = [];
  return {
    begin: () => {
      running += 1;
    },
    end: () => {
      running -= 1;
      if (running > 0) return;
      for (const resolve of idle) resolve();
      idle = [];
    },
    none: () =>
      running === 0 ? Promise.resolve() : new Promise<void>((resolve) => idle.push(resolve)),
  };
}

/** Runs each job with the handler of its name, timing it. */
function processorOf(
  handlers: Record<string, JobHandler<unknown>>,
  onRun: WorkerSettings['onRun'],
  inHand: ReturnType<typeof jobsInHand>,
): Processor {
  return async (job: Job) => {
    const handler = handlers[job.name];
    // A job of a name this build has no handler for fails (and is retried by a newer one).
    if (!handler) throw new Error(`no handler for jobs named ${job.name}`);
    inHand.begin();
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    try {
      const result = await handler(job.data, { id: job.id ?? '', attempt: job.attemptsMade + 1 });
      onRun?.({ name: job.name, outcome: 'completed', seconds: seconds() });
      return result;
    } catch (error) {
      onRun?.({ name: job.name, outcome: 'failed', seconds: seconds() }, error);
      throw error;
    } finally {
      inHand.end();
    }
  };
}
