import { isNull } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { events } from '../../src/db/schema/events.js';
import { useTestApp } from '../helpers/app.js';

/**
 * The API running the jobs itself (JOBS_IN_PROCESS, the development default), on the queue
 * in its database: a committed event is relayed and its job run, the scrape shows the
 * queue and the run.
 */

const TOKEN = 'jobs-metrics-token-'.padEnd(48, 'k');

async function until<T>(read: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('the jobs inside the API (JOBS_IN_PROCESS)', () => {
  const t = useTestApp({
    JOBS_IN_PROCESS: 'true',
    // No poll within the test: only a commit's notification wakes the relay.
    EVENTS_RELAY_INTERVAL: '1h',
    METRICS_TOKEN: TOKEN,
    EMAIL_POLL_INTERVAL: '0',
  });

  const scrape = async () =>
    (
      await t.inject({
        method: 'GET',
        url: '/metrics',
        headers: { authorization: `Bearer ${TOKEN}` },
      })
    ).body;

  const record = (title: string) =>
    t.db.database.db.insert(events).values({
      type: 'post.published',
      subjectId: crypto.randomUUID(),
      payload: { title },
    });
  const allRelayed = () =>
    until(async () => {
      const left = await t.db.database.db.select().from(events).where(isNull(events.relayedAt));
      return left.length === 0 ? true : undefined;
    });

  it('relays a committed event and runs its job, and the metrics show it', async () => {
    await record('relayed');
    await allRelayed();
    const text = await until(async () => {
      const body = await scrape();
      return /job_duration_seconds_count\{name="event",outcome="completed"\} 1/.test(body)
        ? body
        : undefined;
    });
    expect(text).toMatch(/^job_queue_jobs\{state="waiting"\} \d+$/m);
    // The housekeeping is scheduled: its next runs wait as delayed jobs.
    expect(Number(/^job_queue_jobs\{state="delayed"\} (\d+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
  });

  it('is woken by the commit of events from another connection, with no poll due', async () => {
    // The relay's first pass (at start) is over once an event is relayed; the next one is an
    // hour away, so only the commit's notification can relay this one.
    await record('first');
    await allRelayed();
    await record('woken');
    await allRelayed();
  });
});
