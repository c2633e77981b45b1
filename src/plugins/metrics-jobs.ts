import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { JobQueue, JobRun } from '../jobs/queue.js';
import { withTimeout } from '../lib/timeout.js';

/** How long a scrape waits for the queue's counts before it leaves them out. */
const DEPTH_TIMEOUT_MS = 1000;

export type JobDepth = () => ReturnType<JobQueue<object>['depth']>;

/** One webhook attempt's outcome: delivered, failed with another attempt to come, given up. */
export type WebhookOutcome = 'succeeded' | 'retry' | 'failed';

export interface JobMetrics {
  jobRun(run: JobRun): void;
  webhookAttempt(outcome: WebhookOutcome, seconds: number): void;
  /** From an event's commit to a receiver's 2xx, in seconds. */
  webhookDelivered(secondsSinceEvent: number): void;
}

/**
 * The job queue's metrics: its depth by state, read at scrape time (no sample while the
 * queue does not answer), and every run of this process's workers by job name and outcome.
 */
export function registerJobMetrics(
  registry: Registry,
  source: () => JobDepth | undefined,
): JobMetrics {
  new Gauge({
    name: 'job_queue_jobs',
    help: 'Jobs in the queue by state: waiting (to run now), delayed (a retry or a schedule), active (running), failed (given up on, kept a week). No sample while the queue does not answer.',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const depth = source();
      this.reset();
      if (!depth) return;
      try {
        const counts = await withTimeout(depth(), DEPTH_TIMEOUT_MS, 'queue depth');
        for (const [state, value] of Object.entries(counts)) this.labels(state).set(value);
      } catch {
        // Left out: an absent sample says "unknown", a zero would say "empty".
      }
    },
  });
  const durations = new Histogram({
    name: 'job_duration_seconds',
    help: "Runs of this process's jobs by job name and outcome (completed, failed), in seconds.",
    labelNames: ['name', 'outcome'] as const,
    buckets: [0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 120],
    registers: [registry],
  });
  const failures = new Counter({
    name: 'job_failures_total',
    help: "Failed runs of this process's jobs by job name (a failed job is retried until its attempts are spent).",
    labelNames: ['name'] as const,
    registers: [registry],
  });
  return { jobRun: runs(durations, failures), ...registerWebhookMetrics(registry) };
}

function runs(durations: Histogram<'name' | 'outcome'>, failures: Counter<'name'>) {
  return (run: JobRun) => {
    durations.labels(run.name, run.outcome).observe(run.seconds);
    if (run.outcome === 'failed') failures.labels(run.name).inc();
  };
}

function registerWebhookMetrics(registry: Registry): Omit<JobMetrics, 'jobRun'> {
  const attempts = new Histogram({
    name: 'webhook_attempt_duration_seconds',
    help: "This process's webhook attempts by outcome (succeeded; retry: failed, another attempt to come; failed: given up), from the request to the answer, in seconds.",
    labelNames: ['outcome'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'webhook_delivery_latency_seconds',
    help: "From an event's commit to a receiver's 2xx answer, retries included, in seconds.",
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30, 300, 3600, 86400],
    registers: [registry],
  });
  return {
    webhookAttempt: (outcome, seconds) => attempts.labels(outcome).observe(seconds),
    webhookDelivered: (seconds) => latency.observe(seconds),
  };
}
