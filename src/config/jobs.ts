import { defineArea, durationPattern, milliseconds } from './area.js';

export interface JobsSettings {
  /**
   * The job queue (src/jobs): on Redis with REDIS_URL, else on the app's PostgreSQL. The
   * workers, the events relay and the scheduled housekeeping run in the API's process
   * (`inProcess`) or in `npm run worker`'s.
   */
  readonly jobs: {
    readonly inProcess: boolean;
    /** Jobs one process runs at once. */
    readonly concurrency: number;
    /** How often the relay looks for events to queue (it is also nudged by new ones). */
    readonly relayIntervalMs: number;
    /** The worker process's /health, /ready and /metrics (on HOST). */
    readonly workerPort: number;
  };
}

export const jobsArea = defineArea({
  title: 'Jobs and the worker',
  properties: {
    JOBS_IN_PROCESS: {
      type: 'boolean',
      'x-default': 'on in development; off in production and in tests',
      description:
        'run the job workers (webhook deliveries, emails), the events relay and the scheduled housekeeping inside the API server (`true`/`false`); off where `npm run worker` (`node dist/worker.js`) runs them in a process of their own: then nothing in the API sends email. The queue is on Redis with `REDIS_URL`, else in the database',
    },
    JOB_CONCURRENCY: {
      type: 'integer',
      minimum: 1,
      maximum: 200,
      default: 5,
      description: 'how many jobs (emails, webhook deliveries) one process runs at once',
    },
    EVENTS_RELAY_INTERVAL: {
      type: 'string',
      pattern: durationPattern,
      default: '5s',
      description:
        'how often the relay looks for committed events to queue, as a safety net: a commit that records events wakes it at once (LISTEN/NOTIFY), from any process',
    },
    WORKER_PORT: {
      type: 'integer',
      minimum: 0,
      maximum: 65535,
      default: 3001,
      description:
        "the worker process's port (on `HOST`): `GET /health`, `/ready` (its database and queue answer) and, with `METRICS_TOKEN`, `/metrics`",
    },
  },
  settings: (values, context, report): JobsSettings => {
    // Tests start the jobs where they test them; elsewhere the app's own jobs would run
    // beside every test's requests.
    const inProcess = values.JOBS_IN_PROCESS ?? context.env === 'development';
    if (values.JOBS_IN_PROCESS === false && context.embedded && context.purpose === 'server') {
      report.problem(
        ['JOBS_IN_PROCESS'],
        'JOBS_IN_PROCESS=false needs DATABASE_URL: the worker process (npm run worker) cannot share the embedded database, so nothing would run the jobs.',
      );
    }
    return {
      jobs: Object.freeze({
        inProcess,
        concurrency: values.JOB_CONCURRENCY,
        relayIntervalMs: milliseconds(values.EVENTS_RELAY_INTERVAL),
        workerPort: values.WORKER_PORT,
      }),
    };
  },
});
