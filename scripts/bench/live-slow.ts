/**
 * The slow-consumer phase of `npm run bench:live`: the timed sockets' commit → receipt
 * latency beside one subscriber that stops reading, against the same run beside one that
 * reads. The extra socket is on `posts/{id}` of a post of ~95 KB, edited every
 * `floodIntervalMs` (each edit a ~95 KB frame to it, and a `post.updated` summary to every
 * timed socket on `posts`); meanwhile posts are published one at a time as in the fan-out
 * phase. The stalled socket fills the kernel's buffers, then the server's send buffer for it
 * (LIVE_SEND_BUFFER_BYTES): the server drops it (4009, `live_connections_dropped_total
 * {reason="slow-consumer"}`) and cuts it off when the close frame cannot be delivered either.
 * Both runs publish as many posts, with the same edits, so they differ only by the stall.
 */
import type { WithoutId } from './helper.js';
import type { ClientsCommand, ClientsReply, Receipts } from './live-clients.js';
import { summarizeFanOut, type FanOutResult, type Published } from './live-report.js';

export interface SlowConsumerResult {
  /** Posts published during each run (the same count in both). */
  events: number;
  /** Edits of the large post during the stalled run, and its frame's size in bytes. */
  edits: number;
  frameBytes: number;
  /** Ms from the stall to the server's drop (its metric), and to the socket's end there. */
  droppedAfterMs: number | null;
  cutOffAfterMs: number | null;
  /** What the stalled socket had read before it stopped, and the frames the reading one read. */
  stalledRead: { frames: number; bytes: number };
  readingRead: { frames: number; bytes: number };
  /** The server's largest RSS sampled during each run, bytes. */
  rssPeak: { reading: number; stalled: number };
  reading: FanOutResult;
  stalled: FanOutResult;
  /** The stalled run's events published before the server dropped the stalled socket. */
  stalledBeforeDrop: FanOutResult | null;
}

export interface SlowConsumerParts {
  base: string;
  wsUrl: string;
  authorization: string;
  /** A published post, edited throughout. */
  bigPost: string;
  metricsToken: string;
  clients: { ask(message: WithoutId<ClientsCommand>): Promise<ClientsReply> };
  publishSeries(
    intervalMs: number,
    count: number,
    until?: Promise<unknown>,
  ): Promise<{ post: string; respondedAt: number }[]>;
  /** These posts' receipts (awaited first) and their events' times. */
  gather(
    published: { post: string; respondedAt: number }[],
  ): Promise<{ published: Published[]; receipts: Record<string, Receipts> }>;
  /** The timed sockets. */
  sockets: number;
  rss(): number;
  intervalMs: number;
  /** At least this many posts are published in each run. */
  events: number;
  say(message: string): void;
}

const floodIntervalMs = 50;
/** The stalled run ends this long after the stall at the latest, cut off or not. */
const stallBudgetMs = 25_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.timeOrigin + performance.now();

/** The large post's content: ~95 KB of words, different for each edit. */
export function largeContent(edit: number): string {
  return `Edit ${edit}. ${'A long post that one subscriber follows without reading it. '.repeat(1570)}`;
}

/** The bench's most posts published in the two runs (for the drafts made beforehand). */
export const slowConsumerDrafts = (intervalMs: number, events: number) =>
  2 * Math.max(events, Math.ceil(stallBudgetMs / intervalMs) + 1);

/** A sample of the API's /metrics: a series' value (0 when absent). */
async function metric(parts: SlowConsumerParts, series: RegExp): Promise<number> {
  const response = await fetch(`${parts.base}/metrics`, {
    headers: { authorization: `Bearer ${parts.metricsToken}` },
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`/metrics: ${response.status}`);
  let total = 0;
  for (const line of text.split('\n')) {
    const match = series.exec(line);
    if (match) total += Number(match[1]);
  }
  return total;
}
const dropped = (parts: SlowConsumerParts) =>
  metric(parts, /^live_connections_dropped_total\{reason="slow-consumer"\} (\S+)$/);
const connections = (parts: SlowConsumerParts) => metric(parts, /^live_connections\{.*\} (\S+)$/);

/** Edits the large post every floodIntervalMs until `stop` is set; the count made. */
async function flood(parts: SlowConsumerParts, stop: { now: boolean }, first: number) {
  let edits = 0;
  const start = now();
  while (!stop.now) {
    const response = await fetch(`${parts.base}/api/posts/${parts.bigPost}`, {
      method: 'PATCH',
      headers: { authorization: parts.authorization, 'content-type': 'application/json' },
      body: JSON.stringify({ content: largeContent(first + edits) }),
    });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`updatePost: ${response.status}`);
    edits += 1;
    const wait = start + edits * floodIntervalMs - now();
    if (wait > 0) await sleep(wait);
  }
  return edits;
}

/** One run: the extra socket (stalled or reading), the edits, the publishes. */
async function oneRun(parts: SlowConsumerParts, stall: boolean, count: number, firstEdit: number) {
  const droppedBefore = await dropped(parts);
  await parts.clients.ask({
    command: 'extra',
    url: parts.wsUrl,
    channels: [`posts/${parts.bigPost}`],
    stall,
  });
  const connected = await connections(parts);
  const stalledAt = now();
  const stop = { now: false };
  const edits = flood(parts, stop, firstEdit);
  let rssPeak = parts.rss();
  let droppedAt: number | null = null;
  let cutAt: number | null = null;
  // The server's view of the extra socket: dropped (the metric), then gone (the gauge).
  const watch = (async () => {
    while (!stop.now) {
      rssPeak = Math.max(rssPeak, parts.rss());
      if (stall && droppedAt === null && (await dropped(parts)) > droppedBefore) droppedAt = now();
      if (stall && droppedAt !== null && cutAt === null && (await connections(parts)) < connected)
        cutAt = now();
      await sleep(100);
    }
  })();
  const cutOrTimeout = (async () => {
    while (cutAt === null && now() - stalledAt < stallBudgetMs) await sleep(100);
  })();
  const published = stall
    ? await parts.publishSeries(
        parts.intervalMs,
        0,
        // Past the cut-off by a second: the run covers the stall, the drop and after.
        Promise.all([cutOrTimeout.then(() => sleep(1000)), sleep(count * parts.intervalMs)]),
      )
    : await parts.publishSeries(parts.intervalMs, count);
  stop.now = true;
  const made = await edits;
  await watch;
  const extra = (await parts.clients.ask({ command: 'extra-close' })).extra;
  return { published, made, rssPeak, droppedAt, cutAt, stalledAt, extra };
}

export async function slowConsumer(parts: SlowConsumerParts): Promise<SlowConsumerResult> {
  parts.say(`a stalled subscriber of a ~95 KB post edited every ${floodIntervalMs} ms`);
  const stalled = await oneRun(parts, true, parts.events, 0);
  parts.say(
    `stalled: dropped after ${stalled.droppedAt === null ? '(never)' : `${((stalled.droppedAt - stalled.stalledAt) / 1000).toFixed(1)} s`}; ${stalled.published.length} posts published; the same beside a reading subscriber`,
  );
  const summary = (phase: string, gathered: Awaited<ReturnType<SlowConsumerParts['gather']>>) =>
    summarizeFanOut(phase, parts.sockets, gathered.published, gathered.receipts, null);
  const stalledGathered = await parts.gather(stalled.published);
  const droppedAt = stalled.droppedAt;
  const stalledBeforeDrop =
    droppedAt === null
      ? null
      : summary('… of which before its drop', {
          published: stalledGathered.published.filter((p) => p.respondedAt < droppedAt),
          receipts: stalledGathered.receipts,
        });
  const reading = await oneRun(parts, false, stalled.published.length, stalled.made);
  return {
    events: stalled.published.length,
    edits: stalled.made,
    frameBytes: Buffer.byteLength(largeContent(0)),
    droppedAfterMs: stalled.droppedAt === null ? null : stalled.droppedAt - stalled.stalledAt,
    cutOffAfterMs: stalled.cutAt === null ? null : stalled.cutAt - stalled.stalledAt,
    stalledRead: { frames: stalled.extra?.frames ?? 0, bytes: stalled.extra?.bytes ?? 0 },
    readingRead: { frames: reading.extra?.frames ?? 0, bytes: reading.extra?.bytes ?? 0 },
    rssPeak: { reading: reading.rssPeak, stalled: stalled.rssPeak },
    reading: summary('beside a reading subscriber', await parts.gather(reading.published)),
    stalled: summary('beside a stalled subscriber', stalledGathered),
    stalledBeforeDrop,
  };
}
