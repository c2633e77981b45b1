import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen, type Listener } from '../../src/db/notifications.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

/**
 * src/db/notifications.ts on the test server: a NOTIFY from another connection reaches
 * the listener, and a listener whose connection is cut opens a new one and says so,
 * catching up with one call.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

/** A listener on `channel` whose calls and outages are counted and awaited. */
async function listener(channel: string) {
  const seen = { notified: 0, lost: 0, back: 0 };
  let waiting: Array<() => void> = [];
  const wake = () => {
    for (const resolve of waiting) resolve();
    waiting = [];
  };
  const handle: Listener = listen({
    connection: { connectionString: db.url },
    channel,
    onNotify: () => {
      seen.notified += 1;
      wake();
    },
    onLost: () => {
      seen.lost += 1;
      wake();
    },
    onBack: () => {
      seen.back += 1;
      wake();
    },
  });
  const until = async (check: () => boolean) => {
    while (!check()) await new Promise<void>((resolve) => waiting.push(resolve));
  };
  // Listening once its LISTEN has run: the server lists the connection by its last query.
  const backend = async () => {
    for (;;) {
      const rows = await db.sql(
        sql`select pid from pg_stat_activity where query = ${`LISTEN ${channel}`} and datname = current_database()`,
      );
      if (rows[0]) return Number(rows[0].pid);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  await backend();
  return { seen, until, backend, close: () => handle.close() };
}

describe('listen', () => {
  it('is told of a notification sent from another connection', async () => {
    const l = await listener('test_commits');
    try {
      await db.sql(sql`select pg_notify('test_commits', '')`);
      await l.until(() => l.seen.notified === 1);
      expect(l.seen.lost).toBe(0);
    } finally {
      await l.close();
    }
  });

  it('opens a new connection when its own is cut, and catches up', async () => {
    const l = await listener('test_cuts');
    try {
      const first = await l.backend();
      await db.sql(sql`select pg_terminate_backend(${first})`);
      await l.until(() => l.seen.back === 1);
      expect(l.seen.lost).toBe(1);
      // The catch-up call made once it was back.
      expect(l.seen.notified).toBe(1);
      expect(await l.backend()).not.toBe(first);
      await db.sql(sql`select pg_notify('test_cuts', '')`);
      await l.until(() => l.seen.notified === 2);
    } finally {
      await l.close();
    }
  });

  it('refuses a channel that is not a plain identifier', () => {
    expect(() =>
      listen({ connection: {}, channel: 'x; drop table users', onNotify: () => undefined }),
    ).toThrow(TypeError);
  });
});
