import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { eq, isNull } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emailOutbox } from '../../src/db/schema/auth.js';
import { events } from '../../src/db/schema/events.js';
import { projectRoot } from '../../src/paths.js';
import { TEST_JWT_SECRET } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { freePort } from '../helpers/values.js';

/**
 * `npm run worker` as a process: probes on WORKER_PORT, the relay at work, the emails sent,
 * SIGTERM.
 */

async function until<T>(read: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const value = await read().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('the worker process', () => {
  let db: TestDatabase;
  let worker: ChildProcess;
  let port: number;
  beforeAll(async () => {
    db = await createTestDatabase();
    port = await freePort();
    worker = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
      cwd: projectRoot,
      env: {
        PATH: process.env.PATH,
        NODE_ENV: 'test',
        LOG_LEVEL: 'warn',
        DATABASE_URL: db.url,
        JWT_SECRET: TEST_JWT_SECRET,
        WORKER_PORT: String(port),
        EVENTS_RELAY_INTERVAL: '1s',
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  }, 60_000);
  afterAll(async () => {
    if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
    await db.drop();
  });

  it('is ready once its database and queue answer, and relays the events', async () => {
    const ready = await until(async () => {
      const response = await fetch(`http://127.0.0.1:${port}/ready`);
      return response.status === 200 ? await response.json() : undefined;
    });
    expect(ready).toEqual({ status: 'ready', database: 'up', queue: 'up' });
    expect(await (await fetch(`http://127.0.0.1:${port}/health`)).json()).toEqual({
      status: 'ok',
    });
    await db.database.db.insert(events).values({
      type: 'user.created',
      subjectId: crypto.randomUUID(),
      payload: {},
    });
    await until(async () => {
      const left = await db.database.db.select().from(events).where(isNull(events.relayedAt));
      return left.length === 0 ? true : undefined;
    });
  }, 40_000);

  it('sends the emails of the outbox, on the email-delivery schedule', async () => {
    // Queued as a request whose nudge was lost would leave it: no job asked for.
    const [queued] = await db.database.db
      .insert(emailOutbox)
      .values({ recipient: 'worker@example.com', subject: 'Hello', textBody: 'Hi', kind: 'test' })
      .returning({ id: emailOutbox.id });
    await until(async () => {
      const [row] = await db.database.db
        .select({ sentAt: emailOutbox.sentAt })
        .from(emailOutbox)
        .where(eq(emailOutbox.id, queued!.id));
      return row?.sentAt ? true : undefined;
    });
  }, 40_000);

  it('exits 0 on SIGTERM', async () => {
    const exited = once(worker, 'exit');
    worker.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
  }, 30_000);
});
