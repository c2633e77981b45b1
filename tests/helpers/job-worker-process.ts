/**
 * A worker process for tests/integration/job-crash.test.ts: it takes jobs from the queue
 * that JOB_BACKEND (JSON settings) names, says "started <id>" on stdout for each, and
 * never finishes one: the test kills it mid-job.
 */
import { createJobQueue } from '../../src/jobs/queue.js';

const settings = JSON.parse(process.env.JOB_BACKEND ?? '') as Parameters<typeof createJobQueue>[0];
const queue = await createJobQueue<{ slow: { n: number } }>(settings);
queue.work(
  {
    slow: (_payload, job) => {
      process.stdout.write(`started ${job.id}\n`);
      return new Promise(() => undefined);
    },
  },
  { concurrency: 1, lockDurationMs: 1000, stalledIntervalMs: 500 },
);
process.stdout.write('working\n');
