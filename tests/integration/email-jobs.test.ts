import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { jobBackends, testJobBackend, type TestJobBackend } from '../helpers/jobs.js';
import { outboxFor, startSmtpSink, type SmtpSink } from '../helpers/mail.js';
import { redisTestApp, type RedisTestApp } from '../helpers/redis.js';
import { freePort, unique } from '../helpers/values.js';

/**
 * Emails as jobs, through the API, on each job backend: a request that queues an email
 * asks for an `email-delivery` job, which the job worker runs at once (no polling loop
 * anywhere); the job's schedule (EMAIL_POLL_INTERVAL) sends what no job was asked for.
 */

const METRICS_TOKEN = 'email-jobs-metrics-token-'.padEnd(48, 'm');

/** Resolves once `check` holds, polling; fails after `timeoutMs` saying what it waited for. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The completed runs of the email-delivery job in this app's process, as scraped. */
async function deliveryRuns(app: FastifyInstance): Promise<number> {
  const text = await app.metrics.scrape();
  const match =
    /^job_duration_seconds_count\{name="email-delivery",outcome="completed"\} (\d+)$/m.exec(text);
  return Number(match?.[1] ?? 0);
}

async function signUp(app: FastifyInstance): Promise<string> {
  const name = unique('jobmail');
  const email = `${name}@example.com`;
  const response = await app.inject({
    method: 'POST',
    url: '/api/users',
    payload: { email, username: name, password: 'correct horse battery staple' },
  });
  expect(response.statusCode, response.body).toBe(201);
  return email;
}

describe.each(jobBackends)('emails sent by the job worker, the queue on %s', (kind) => {
  let db: TestDatabase;
  let backend: TestJobBackend;
  let smtp: SmtpSink;
  let apps: RedisTestApp[] = [];

  beforeEach(async () => {
    db = await createTestDatabase();
    backend = testJobBackend(kind, db);
    smtp = await startSmtpSink();
  });
  afterEach(async () => {
    for (const started of apps) {
      expect(started.violations(), 'responses outside the contract, or leaking secrets').toEqual(
        [],
      );
      await started.app.close();
    }
    apps = [];
    await Promise.all([backend.cleanup(), smtp.close()]);
    await db.drop();
  });

  /** An instance on this test's database and queue (the shared Redis, or the database). */
  async function instance(env: Record<string, string>): Promise<RedisTestApp> {
    const settings = backend.settings;
    const queue: Record<string, string> =
      settings.kind === 'redis'
        ? { REDIS_URL: settings.url, REDIS_KEY_PREFIX: settings.keyPrefix }
        : {};
    const started = await redisTestApp(db, {
      ...queue,
      SMTP_URL: smtp.url,
      METRICS_TOKEN,
      ...env,
    });
    apps.push(started);
    return started;
  }

  it("sends a sign-up's verification email at once from the job worker, with no polling", async () => {
    const { app } = await instance({ JOBS_IN_PROCESS: 'true', EMAIL_POLL_INTERVAL: '1h' });
    // A scheduler's first run is one interval after it is declared: an hour away.
    const before = await deliveryRuns(app);

    const email = await signUp(app);
    await smtp.waitFor(1);
    expect(smtp.received).toEqual([
      expect.objectContaining({ recipients: [email], subject: 'Confirm your email address' }),
    ]);
    await until('the run to be recorded', async () => (await deliveryRuns(app)) > before);
    await until('the email marked sent', async () =>
      (await outboxFor({ db } as TestApp, email)).every((row) => row.sent_at !== null),
    );
  });

  it('sends on its schedule an email no job was asked for (its nudge lost)', async () => {
    const worker = await instance({ JOBS_IN_PROCESS: 'true', EMAIL_POLL_INTERVAL: '1s' });
    await until('the first scheduled run', async () => (await deliveryRuns(worker.app)) >= 1);
    // An instance that asks for no job (EMAIL_POLL_INTERVAL=0), as if its nudge were lost.
    const api = await instance({ EMAIL_POLL_INTERVAL: '0' });
    const email = await signUp(api.app);
    await smtp.waitFor(1);
    expect(smtp.received.map((mail) => mail.recipients)).toEqual([[email]]);
  });
});

describe('an API server whose job queue does not answer', () => {
  let db: TestDatabase;
  let smtp: SmtpSink;
  const apps: RedisTestApp[] = [];

  beforeEach(async () => {
    db = await createTestDatabase();
    smtp = await startSmtpSink();
  });
  afterEach(async () => {
    for (const { app } of apps.splice(0)) await app.close();
    await smtp.close();
    await db.drop();
  });

  it('still answers, warns once, and the worker sends the emails on its schedule', async () => {
    // Nothing listens at this Redis: the nudges cannot be queued (nor the rate limits
    // counted, which let the requests through).
    const api = await redisTestApp(db, {
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      EMAIL_POLL_INTERVAL: '1s',
    });
    apps.push(api);
    const first = await signUp(api.app);
    const second = await signUp(api.app);
    const said = (line: Record<string, unknown>) =>
      /could not queue an email delivery job/.test(String(line.msg));
    await until('the warning', async () => api.logs.some(said));
    // The worker's queue (in the database) never heard of them; its schedule sends them.
    const worker = await redisTestApp(db, {
      JOBS_IN_PROCESS: 'true',
      EMAIL_POLL_INTERVAL: '1s',
      SMTP_URL: smtp.url,
    });
    apps.push(worker);
    await smtp.waitFor(2);
    expect(smtp.received.flatMap((mail) => mail.recipients).sort()).toEqual([first, second].sort());
    expect(api.logs.filter(said)).toEqual([expect.objectContaining({ level: 40 })]);
    expect(api.violations()).toEqual([]);
  });
});
