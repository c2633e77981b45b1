import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJobQueue, type JobQueue } from '../../src/jobs/queue.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { jobBackends, signal, testJobBackend, type TestJobBackend } from '../helpers/jobs.js';

interface CrashJobs {
  slow: { n: number };
}

const workerFile = fileURLToPath(new URL('../helpers/job-worker-process.ts', import.meta.url));

/** Resolves with the first stdout line of `child` that matches `pattern`. */
function lineOf(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const line = text.split('\n').find((candidate) => pattern.test(candidate));
      if (line) resolve(line);
    });
    child.once('exit', (code) =>
      reject(new Error(`the worker exited (${code}) before ${pattern}`)),
    );
  });
}

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

describe.each(jobBackends)('a worker killed mid-job on %s', (kind) => {
  let backend: TestJobBackend;
  let queue: JobQueue<CrashJobs>;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    backend = testJobBackend(kind, db);
    queue = await createJobQueue<CrashJobs>(backend.settings);
  });
  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await queue.close();
    await backend.cleanup();
  });

  it('leaves its job to another worker, which runs it', { timeout: 40_000 }, async () => {
    child = spawn(process.execPath, ['--import', 'tsx', workerFile], {
      env: { ...process.env, JOB_BACKEND: JSON.stringify(backend.settings) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await lineOf(child, /^working$/);
    await queue.enqueue('slow', { n: 1 }, { id: 'crash-1' });
    expect(await lineOf(child, /^started /)).toBe('started crash-1');
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;

    const ranAgain = signal<{ id: string; n: number }>();
    const worker = queue.work(
      { slow: async (payload, job) => ranAgain.resolve({ id: job.id, ...payload }) },
      { concurrency: 1, lockDurationMs: 1000, stalledIntervalMs: 500 },
    );
    try {
      expect(await ranAgain.promise).toEqual({ id: 'crash-1', n: 1 });
    } finally {
      await worker.close(5000);
    }
  });
});
