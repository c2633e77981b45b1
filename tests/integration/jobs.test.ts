import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createJobQueue, type JobQueue, type JobWorker } from '../../src/jobs/queue.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { jobBackends, signal, testJobBackend, type TestJobBackend } from '../helpers/jobs.js';

interface TestJobs {
  echo: { n: number };
  other: { text: string };
}

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

describe.each(jobBackends)('the job queue on %s', (kind) => {
  let backend: TestJobBackend;
  let queue: JobQueue<TestJobs>;
  const workers: JobWorker[] = [];

  beforeAll(async () => {
    backend = testJobBackend(kind, db);
    queue = await createJobQueue<TestJobs>(backend.settings);
  });
  afterEach(async () => {
    for (const worker of workers.splice(0)) await worker.close(5000);
  });
  afterAll(async () => {
    await queue.close();
    await backend.cleanup();
  });

  /** Resolves once the queue holds nothing waiting or running (a schedule's next is delayed). */
  async function drained(): Promise<void> {
    for (;;) {
      const depth = await queue.depth();
      if (depth.waiting + depth.active === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('runs each job with the handler of its name, with its payload', async () => {
    const echoed = signal<{ n: number; id: string; attempt: number }>();
    const other = signal<string>();
    workers.push(
      queue.work(
        {
          echo: async (payload, job) => echoed.resolve({ ...payload, ...job }),
          other: async (payload) => other.resolve(payload.text),
        },
        { concurrency: 2 },
      ),
    );
    await queue.enqueue('echo', { n: 7 }, { id: 'run-echo' });
    await queue.enqueue('other', { text: 'hello' }, { id: 'run-other' });
    expect(await echoed.promise).toEqual({ n: 7, id: 'run-echo', attempt: 1 });
    expect(await other.promise).toBe('hello');
  });

  it('adds a job once per id, also after it ran', async () => {
    const runs: string[] = [];
    const last = signal();
    workers.push(
      queue.work(
        {
          echo: async (payload, job) => {
            runs.push(job.id);
            if (payload.n === 3) last.resolve();
          },
          other: async () => undefined,
        },
        { concurrency: 1 },
      ),
    );
    await queue.enqueueAll([
      { name: 'echo', payload: { n: 1 }, id: 'once-a' },
      { name: 'echo', payload: { n: 1 }, id: 'once-a' },
    ]);
    await queue.enqueue('echo', { n: 1 }, { id: 'once-a' });
    await queue.enqueue('echo', { n: 3 }, { id: 'once-b' });
    await last.promise;
    await drained();
    await queue.enqueue('echo', { n: 1 }, { id: 'once-a' });
    await drained();
    expect(runs.sort()).toEqual(['once-a', 'once-b']);
  });

  it('coalesces the jobs of one key: one waits, and one more (the last) while one runs', async () => {
    const runs: number[] = [];
    const running = signal();
    const release = signal();
    const done = signal();
    // No worker yet: the second waits behind the first, so it is not added.
    await queue.enqueue('echo', { n: 1 }, { coalesce: 'same' });
    await queue.enqueue('echo', { n: 2 }, { coalesce: 'same' });
    workers.push(
      queue.work(
        {
          echo: async ({ n }) => {
            runs.push(n);
            if (n === 1) {
              running.resolve();
              await release.promise;
            }
            if (n === 5) done.resolve();
          },
          other: async () => undefined,
        },
        // Room for two at once: only the coalescing keeps them apart.
        { concurrency: 2 },
      ),
    );
    await running.promise;
    await queue.enqueue('echo', { n: 3 }, { coalesce: 'same' });
    await queue.enqueue('echo', { n: 4 }, { coalesce: 'same' });
    release.resolve();
    await drained();
    // Once they ran, the key is free again.
    await queue.enqueue('echo', { n: 5 }, { coalesce: 'same' });
    await done.promise;
    expect(runs).toEqual([1, 4, 5]);
  });

  it('two workers never run one job twice', async () => {
    const runs = new Map<number, number>();
    const all = signal();
    const count = 60;
    const handlers = {
      echo: async ({ n }: { n: number }) => {
        runs.set(n, (runs.get(n) ?? 0) + 1);
        if (runs.size === count) all.resolve();
      },
      other: async () => undefined,
    };
    workers.push(
      queue.work(handlers, { concurrency: 4 }),
      queue.work(handlers, { concurrency: 4 }),
    );
    await queue.enqueueAll(
      Array.from({ length: count }, (_, n) => ({
        name: 'echo' as const,
        payload: { n },
        id: `twice-${n}`,
      })),
    );
    await all.promise;
    await drained();
    expect([...runs.values()].every((times) => times === 1)).toBe(true);
    expect(runs.size).toBe(count);
  });

  it('retries a job that failed, and reports each run', async () => {
    const outcomes: string[] = [];
    const succeeded = signal<number>();
    workers.push(
      queue.work(
        {
          echo: async (_payload, job) => {
            if (job.attempt === 1) throw new Error('first attempt fails');
            succeeded.resolve(job.attempt);
          },
          other: async () => undefined,
        },
        { concurrency: 1, onRun: (run) => outcomes.push(`${run.name} ${run.outcome}`) },
      ),
    );
    await queue.enqueue('echo', { n: 1 }, { id: 'retried' });
    expect(await succeeded.promise).toBe(2);
    await drained();
    expect(outcomes).toEqual(['echo failed', 'echo completed']);
  });

  it('runs a scheduled job on one worker, whichever instances schedule it', async () => {
    const second = await createJobQueue<TestJobs>(backend.settings);
    try {
      await Promise.all([
        queue.schedule('other', 200, { text: 'tick' }),
        second.schedule('other', 200, { text: 'tick' }),
      ]);
      const ticked = signal();
      let ticks = 0;
      workers.push(
        queue.work(
          {
            echo: async () => undefined,
            other: async () => {
              ticks += 1;
              if (ticks === 2) ticked.resolve();
            },
          },
          { concurrency: 2 },
        ),
      );
      await ticked.promise;
      // Left ticking, the schedule would put jobs in the queue after this test's worker is
      // gone, and the next test's wait for an empty queue would never end.
      await queue.unschedule('other');
      await drained();
    } finally {
      await second.close();
    }
  });

  it('closes a worker once its job is done, within the wait', async () => {
    const started = signal();
    const finish = signal();
    const worker = queue.work(
      {
        echo: async () => {
          started.resolve();
          await finish.promise;
        },
        other: async () => undefined,
      },
      { concurrency: 1 },
    );
    await queue.enqueue('echo', { n: 1 }, { id: 'close-finished' });
    await started.promise;
    const closing = worker.close(10_000);
    finish.resolve();
    expect(await closing).toBe('finished');
    // Recorded as done: not left active, for another worker to run again.
    expect((await queue.depth()).active).toBe(0);
    await drained();
  });

  it('abandons a job still running after the wait; another worker runs it again', async () => {
    // On Redis, a queue of its own: the stalled-job check runs at most once per stalledInterval of
    // the worker that ran it last, and the other tests' workers have the default (30 s).
    const own = testJobBackend(kind, db);
    const fresh = await createJobQueue<TestJobs>(own.settings);
    try {
      const started = signal();
      const settings = { concurrency: 1, lockDurationMs: 1000, stalledIntervalMs: 500 };
      const stuck = fresh.work(
        {
          echo: async () => {
            started.resolve();
            await new Promise(() => undefined);
          },
          other: async () => undefined,
        },
        settings,
      );
      await fresh.enqueue('echo', { n: 5 }, { id: 'close-abandoned' });
      await started.promise;
      expect(await stuck.close(300)).toBe('abandoned');
      const ranAgain = signal<string>();
      const next = fresh.work(
        { echo: async (_payload, job) => ranAgain.resolve(job.id), other: async () => undefined },
        settings,
      );
      expect(await ranAgain.promise).toBe('close-abandoned');
      await next.close(5000);
    } finally {
      await fresh.close();
      await own.cleanup();
    }
  });

  it('rejects an id BullMQ would misread', async () => {
    await expect(queue.enqueue('echo', { n: 1 }, { id: 'a:b' })).rejects.toThrow(/no ':'/);
    await expect(queue.enqueue('echo', { n: 1 }, { id: '123' })).rejects.toThrow(/all digits/);
  });

  it('answers a ping', async () => {
    await expect(queue.ping(2000)).resolves.toBeUndefined();
  });
});
