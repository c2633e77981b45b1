/** The figures of `npm run bench:live`: latencies from receipts, and the markdown tables. */
import type { Receipts } from './live-clients.js';
import type { SlowConsumerResult } from './live-slow.js';

export const percentile = (sorted: ArrayLike<number>, p: number): number =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

const ascending = (values: number[]) => Float64Array.from(values).sort();
export const mean = (values: number[]) =>
  values.length === 0 ? Number.NaN : values.reduce((sum, v) => sum + v, 0) / values.length;
export const median = (values: number[]) => percentile(ascending(values), 50);

/** One published post of a phase: when the bench had the answer, and the event's times. */
export interface Published {
  post: string;
  /** The publish request's response arrived (an upper bound of the commit), ms since 1970. */
  respondedAt: number;
  /** events.occurred_at: the transaction's start (a lower bound of the commit). */
  occurredAt: number;
  /** events.relayed_at: the relay's transaction. */
  relayedAt: number;
}

export interface Spread {
  p50: number;
  p99: number;
  max: number;
}

export interface FanOutResult {
  phase: string;
  events: number;
  sockets: number;
  /** (socket, event) pairs expected and received. */
  expected: number;
  received: number;
  /** Receipt − the response's arrival: at most the latency from the commit. */
  fromResponse: Spread;
  /** Receipt − the event's occurred_at: at least the latency from the commit. */
  fromTimestamp: Spread;
  /** Per event: occurred_at → relayed_at (the relay's wait). */
  relay: Spread;
  /** Per event: relayed_at → the first socket's receipt (the bus, the read, the first send). */
  toFirst: Spread;
  /** Per event: the first socket's receipt → the last's. */
  firstToLast: Spread;
  /** The server's CPU time per frame delivered over the phase, µs (null: not measured). */
  cpuUsPerFrame: number | null;
  /** The subscribers' process's CPU time per frame received over the phase, µs (at rest included). */
  clientCpuUsPerFrame: number | null;
}

function spread(values: number[]): Spread {
  const sorted = ascending(values);
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
  };
}

export function summarizeFanOut(
  phase: string,
  sockets: number,
  published: Published[],
  receipts: Record<string, Receipts>,
  cpuUsPerFrame: number | null,
): FanOutResult {
  const fromResponse: number[] = [];
  const fromTimestamp: number[] = [];
  const relay: number[] = [];
  const toFirst: number[] = [];
  const firstToLast: number[] = [];
  let received = 0;
  for (const event of published) {
    const times = (receipts[event.post]?.receivedAt ?? []).filter((t): t is number => t !== null);
    received += times.length;
    relay.push(event.relayedAt - event.occurredAt);
    if (times.length === 0) continue;
    let first = Infinity;
    let last = -Infinity;
    for (const t of times) {
      fromResponse.push(t - event.respondedAt);
      fromTimestamp.push(t - event.occurredAt);
      first = Math.min(first, t);
      last = Math.max(last, t);
    }
    toFirst.push(first - event.relayedAt);
    firstToLast.push(last - first);
  }
  return {
    phase,
    events: published.length,
    sockets,
    expected: published.length * sockets,
    received,
    fromResponse: spread(fromResponse),
    fromTimestamp: spread(fromTimestamp),
    relay: spread(relay),
    toFirst: spread(toFirst),
    firstToLast: spread(firstToLast),
    cpuUsPerFrame,
    clientCpuUsPerFrame: null,
  };
}

export interface ReadRun {
  requests: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
  cpuUsPerRequest: number;
  /**
   * CPU over the run, % of one core: the server's, the subscribers' process's, the load
   * generator's, and the whole machine's busy time (of 100 × its cores).
   */
  cpuShares: { server: number; subscribers: number; loadGenerator: number; machine: number };
}

export interface ReadResult {
  operation: string;
  /**
   * Without sockets: before the first round's sockets were opened and after each round's
   * were closed (rounds + 1 runs); each run with them lies between two of these.
   */
  without: ReadRun[];
  /** With events flowing but no socket open, one run per round (before its sockets open). */
  eventsOnly: ReadRun[];
  /** With the sockets open and events flowing, one run per round. */
  with: ReadRun[];
  /** The events published meanwhile, per second (the median over the rounds). */
  eventsPerSecond: number;
}

export interface MemoryResult {
  round: number;
  sockets: number;
  subscriptions: number;
  openMs: number;
  /** The server's RSS, bytes: at rest before the sockets opened, once they were open… */
  rssBefore: number;
  rssOpen: number;
  /** …after the one-at-a-time events (the first round only; NaN otherwise)… */
  rssAfterEvents: number;
  /** …and once they were closed (after the reads with them). */
  rssClosed: number;
}

export interface BusResult {
  bus: 'postgres' | 'redis';
  memory: MemoryResult[];
  fanOut: FanOutResult[];
  reads: ReadResult[];
  /** Server CPU per publish with no socket open (the baseline of the CPU per frame), µs. */
  publishCpuUs: number;
  /** The server's CPU at rest, µs a second, without sockets and with them open. */
  idleCpuUsPerSecond: { without: number; with: number };
  closedEarly: Record<string, number>;
  /** The slow-consumer phase (null: not run). Its fan-out rows are in `fanOut` too. */
  slowConsumer: SlowConsumerResult | null;
}

/**
 * The run with sockets against those without on either side of it (their mean), per
 * round; the median of the rounds' ratios.
 */
export function bracketedRatio(
  read: ReadResult,
  figure: (run: ReadRun) => number,
  runs: ReadRun[] = read.with,
): number {
  return median(
    runs.map((run, i) => {
      const around = [read.without[i], read.without[i + 1]].filter((r): r is ReadRun => !!r);
      return figure(run) / mean(around.map(figure));
    }),
  );
}

const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : '–');
const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
const table = (head: string[], rows: string[][]) =>
  [row(head), row(head.map(() => '---')), ...rows.map(row)].join('\n');

export function fanOutTable(results: BusResult[]): string {
  return table(
    [
      'bus',
      'phase',
      'events × sockets',
      'received',
      'from response p50 / p99 / max ms',
      'from timestamp p50 / p99 / max ms',
      'commit → relay p50 / p99',
      'relay → 1st socket p50 / p99',
      '1st → last socket p50 / p99 / max',
      'CPU µs/frame: server / subscribers',
    ],
    results.flatMap((r) =>
      r.fanOut.map((f) => [
        r.bus,
        f.phase,
        `${f.events} × ${f.sockets}`,
        f.received === f.expected ? 'all' : `**${f.received} of ${f.expected}**`,
        `${ms(f.fromResponse.p50)} / ${ms(f.fromResponse.p99)} / ${ms(f.fromResponse.max)}`,
        `${ms(f.fromTimestamp.p50)} / ${ms(f.fromTimestamp.p99)} / ${ms(f.fromTimestamp.max)}`,
        `${ms(f.relay.p50)} / ${ms(f.relay.p99)}`,
        `${ms(f.toFirst.p50)} / ${ms(f.toFirst.p99)}`,
        `${ms(f.firstToLast.p50)} / ${ms(f.firstToLast.p99)} / ${ms(f.firstToLast.max)}`,
        `${f.cpuUsPerFrame === null ? '–' : f.cpuUsPerFrame.toFixed(1)} / ${f.clientCpuUsPerFrame === null ? '–' : f.clientCpuUsPerFrame.toFixed(1)}`,
      ]),
    ),
  );
}

export function slowConsumerTable(results: BusResult[]): string {
  const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  const seconds = (value: number | null) => (value === null ? 'never' : (value / 1000).toFixed(1));
  return table(
    [
      'bus',
      'posts published',
      'edits of the large post (frame KB)',
      'stalled socket: dropped / cut off after s',
      'frames, MB read by the extra subscriber: reading / stalled',
      "the others' p99 from response ms: beside a reading / a stalled subscriber",
      'ratio',
      'server RSS peak MB: reading / stalled',
    ],
    results.flatMap(({ bus, slowConsumer: s }) =>
      s === null
        ? []
        : [
            [
              bus,
              String(s.events),
              `${s.edits} (${(s.frameBytes / 1024).toFixed(0)})`,
              `${seconds(s.droppedAfterMs)} / ${seconds(s.cutOffAfterMs)}`,
              `${s.readingRead.frames}, ${mb(s.readingRead.bytes)} / ${s.stalledRead.frames}, ${mb(s.stalledRead.bytes)}`,
              `${ms(s.reading.fromResponse.p99)} / ${ms(s.stalled.fromResponse.p99)}`,
              `${(s.stalled.fromResponse.p99 / s.reading.fromResponse.p99).toFixed(2)}×`,
              `${mb(s.rssPeak.reading)} / ${mb(s.rssPeak.stalled)}`,
            ],
          ],
    ),
  );
}

export function memoryTable(results: BusResult[]): string {
  return table(
    [
      'bus',
      'round',
      'sockets (subscriptions)',
      'opened in',
      'RSS before MB',
      'RSS open MB',
      'per connection KB',
      'RSS after the events MB',
      'RSS closed MB',
    ],
    results.flatMap(({ bus, memory }) =>
      memory.map((m) => [
        bus,
        m.round === 0 ? 'as started' : String(m.round),
        `${m.sockets} (${m.subscriptions})`,
        `${(m.openMs / 1000).toFixed(1)} s`,
        mb(m.rssBefore),
        mb(m.rssOpen),
        ((m.rssOpen - m.rssBefore) / m.sockets / 1024).toFixed(1),
        Number.isNaN(m.rssAfterEvents) ? '–' : mb(m.rssAfterEvents),
        mb(m.rssClosed),
      ]),
    ),
  );
}

/** The CPU shares of runs (their medians), as "server / subscribers / load generator / machine". */
const shares = (runs: ReadRun[]) =>
  (['server', 'subscribers', 'loadGenerator', 'machine'] as const)
    .map((key) => median(runs.map((run) => run.cpuShares[key])).toFixed(0))
    .join(' / ');

const list = (runs: ReadRun[], figure: (run: ReadRun) => number, digits: number) =>
  runs.map((run) => figure(run).toFixed(digits)).join(' / ');

export function readsTable(results: BusResult[]): string {
  return table(
    [
      'bus',
      'operation',
      'p99 ms: no sockets, no events (each run)',
      'events, no sockets',
      'sockets and events',
      'p99 ratio: events / sockets and events',
      'req/s: no sockets, no events',
      'events, no sockets',
      'sockets and events',
      'req/s ratio: events / sockets and events',
      'CPU µs/req: none / events / both',
      'CPU % with both: server / subscribers / load generator / machine',
      'events/s',
      'non-2xx',
    ],
    results.flatMap(({ bus, reads }) =>
      reads.map((r) => {
        const all = [...r.without, ...r.eventsOnly, ...r.with];
        const failed = all.reduce((n, w) => n + w.non2xx + w.errors, 0);
        const cpu = (runs: ReadRun[]) => median(runs.map((run) => run.cpuUsPerRequest)).toFixed(0);
        const p99 = (run: ReadRun) => run.p99Ms;
        const perSecond = (run: ReadRun) => run.perSecond;
        const ratios = (figure: (run: ReadRun) => number) =>
          `${bracketedRatio(r, figure, r.eventsOnly).toFixed(2)}× / ${bracketedRatio(r, figure).toFixed(2)}×`;
        return [
          bus,
          r.operation,
          list(r.without, p99, 1),
          list(r.eventsOnly, p99, 1),
          list(r.with, p99, 1),
          ratios(p99),
          list(r.without, perSecond, 0),
          list(r.eventsOnly, perSecond, 0),
          list(r.with, perSecond, 0),
          ratios(perSecond),
          `${cpu(r.without)} / ${cpu(r.eventsOnly)} / ${cpu(r.with)}`,
          shares(r.with),
          r.eventsPerSecond.toFixed(1),
          failed === 0 ? '0' : `**${failed}**`,
        ];
      }),
    ),
  );
}
