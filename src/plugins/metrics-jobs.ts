import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { JobQueue, JobRun } from '../jobs/queue.js';
import { withTimeout } from '../lib/timeout.js';

/** How long a scrape waits for the queue's counts before it leaves them out. */
const DEPTH_TIMEOUT_MS = 1000;

export type JobDepth = () => ReturnType<JobQueue<object>['depth']>;

/**
 * The job queue's metrics: its depth by state, read at scrape time (no sample while the
 * queue does not answer), and every run of this process's workers by job name and outcome.
 */
export function registerJobMetrics(
  registry: Registry,
  source: () => JobDepth | undefined,
): { jobRun(run: JobRun): void } {
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
  return {
    jobRun(run) {
      durations.labels(run.name, run.outcome).observe(run.seconds);
      if (run.outcome === 'failed') failures.labels(run.name).inc();
    },
  };
}
