import { count, isNull } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { events } from '../../src/db/schema/events.js';
import { createJobQueue, type JobQueue } from '../../src/jobs/queue.js';
import { createEventsRelay, type EventsRelay } from '../../src/modules/events/outbox.js';
import type { DomainEvent } from '../../src/modules/events/types.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { jobBackends, signal, testJobBackend, type TestJobBackend } from '../helpers/jobs.js';
import { throwawayRedis, type ThrowawayRedis } from '../helpers/redis.js';

interface RelayJobs {
  event: DomainEvent;
}

/** What the composition's publish does: one `event` job per event, keyed by its id. */
function publisher(queue: JobQueue<RelayJobs>, seen: string[] = []) {
  return async (batch: DomainEvent[]) => {
    seen.push(...batch.map((event) => event.id));
    await queue.enqueueAll(
      batch.map((event) => ({ name: 'event' as const, payload: event, id: `event-${event.id}` })),
    );
  };
}

const quiet = { warn: () => undefined, info: () => undefined };

async function recordEvents(db: TestDatabase, n: number): Promise<string[]> {
  const rows = await db.database.db
    .insert(events)
    .values(
      Array.from({ length: n }, () => ({
        type: 'post.published',
        subjectId: crypto.randomUUID(),
        payload: { title: 'a post' },
      })),
    )
    .returning({ id: events.id });
  return rows.map((row) => row.id);
}

async function unrelayed(db: TestDatabase): Promise<number> {
  const [row] = await db.database.db
    .select({ n: count() })
    .from(events)
    .where(isNull(events.relayedAt));
  return row?.n ?? -1;
}

describe.each(jobBackends)('the events relay on %s', (kind) => {
  let db: TestDatabase;
  let backend: TestJobBackend;
  let queue: JobQueue<RelayJobs>;
  beforeAll(async () => {
    db = await createTestDatabase();
    backend = testJobBackend(kind, db);
    queue = await createJobQueue<RelayJobs>(backend.settings);
  });
  afterAll(async () => {
    await queue.close();
    await backend.cleanup();
    await db.drop();
  });

  it('two relays racing on the same events queue each event once', async () => {
    const ids = await recordEvents(db, 250);
    const seen: string[] = [];
    const relays = [1, 2].map(() =>
      createEventsRelay({
        db: db.database.db,
        publish: publisher(queue, seen),
        log: quiet,
        pollIntervalMs: 1000,
        batchSize: 20,
      }),
    );
    const relayed = await Promise.all(relays.map((relay) => relay.relayAll()));
    expect(relayed[0]! + relayed[1]!).toBe(250);
    expect(seen.sort()).toEqual([...ids].sort());
    expect(await unrelayed(db)).toBe(0);
    const depth = await queue.depth();
    expect(depth.waiting + depth.delayed).toBe(250);
  });

  it('a failed publish leaves the events to the next try', async () => {
    await recordEvents(db, 3);
    const relay = createEventsRelay({
      db: db.database.db,
      publish: () => Promise.reject(new Error('queue down')),
      log: quiet,
      pollIntervalMs: 1000,
    });
    await expect(relay.relayAll()).rejects.toThrow('queue down');
    expect(await unrelayed(db)).toBe(3);
    const retry = createEventsRelay({
      db: db.database.db,
      publish: publisher(queue),
      log: quiet,
      pollIntervalMs: 1000,
    });
    expect(await retry.relayAll()).toBe(3);
  });

  it('tells the live updates of a batch as it takes it, queued or not, and again when it takes it again', async () => {
    const ids = await recordEvents(db, 2);
    const taken: string[][] = [];
    const onTaken = (batch: DomainEvent[]) => taken.push(batch.map((event) => event.id));
    const down = createEventsRelay({
      db: db.database.db,
      publish: () => Promise.reject(new Error('queue down')),
      onTaken,
      log: quiet,
      pollIntervalMs: 1000,
    });
    await expect(down.relayAll()).rejects.toThrow('queue down');
    // The sockets got them although the queue did not take them.
    expect(taken).toEqual([ids]);
    const up = createEventsRelay({
      db: db.database.db,
      publish: publisher(queue),
      onTaken,
      log: quiet,
      pollIntervalMs: 1000,
    });
    expect(await up.relayAll()).toBe(2);
    expect(taken).toEqual([ids, ids]);
  });
});

describe('the events relay while Redis is down', () => {
  let db: TestDatabase;
  let redis: ThrowawayRedis;
  let queue: JobQueue<RelayJobs>;
  let relay: EventsRelay | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
    redis = await throwawayRedis();
    await redis.start();
    queue = await createJobQueue<RelayJobs>({ kind: 'redis', url: redis.url, keyPrefix: 't:' });
  });
  afterAll(async () => {
    await relay?.stop();
    await queue.close();
    await redis.stop();
    await db.drop();
  });

  it('keeps the events in PostgreSQL and queues every one once Redis is back', async () => {
    const paused = signal();
    const resumed = signal();
    relay = createEventsRelay({
      db: db.database.db,
      publish: publisher(queue),
      log: { warn: () => paused.resolve(), info: () => resumed.resolve() },
      pollIntervalMs: 50,
      maxBackoffMs: 200,
      publishTimeoutMs: 1000,
    });
    relay.start();
    await redis.kill();
    const ids = await recordEvents(db, 40);
    relay.nudge();
    await paused.promise;
    expect(await unrelayed(db)).toBe(40);

    await redis.start();
    await resumed.promise;
    expect(await unrelayed(db)).toBe(0);
    const ran = new Set<string>();
    const all = signal();
    const worker = queue.work(
      {
        event: async (event) => {
          ran.add(event.id);
          if (ran.size === ids.length) all.resolve();
        },
      },
      { concurrency: 4 },
    );
    await all.promise;
    await worker.close(5000);
    expect([...ran].sort()).toEqual([...ids].sort());
  });
});
