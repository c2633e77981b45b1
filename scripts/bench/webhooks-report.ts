/** The figures of `npm run bench:webhooks`: percentiles, the stages, the markdown tables. */

/** One delivery's times, in ms since 1970 (the process's and the database's clock). */
export interface Delivery {
  committed: number;
  /** The relay's transaction (events.relayed_at). */
  relayed: number;
  /** The event's job made the delivery (webhook_deliveries.created_at). */
  created: number;
  /** The attempt's job claimed it (last_attempt_at), just before the send. */
  claimed: number;
  /** The receiver's first receipt. */
  received: number;
}

const stages = {
  relay: (d: Delivery) => d.relayed - d.committed,
  event: (d: Delivery) => d.created - d.relayed,
  attempt: (d: Delivery) => d.claimed - d.created,
  send: (d: Delivery) => d.received - d.claimed,
} as const;
type Stage = keyof typeof stages;

export interface PhaseResult {
  name: 'burst' | 'trickle' | 'steady';
  /** Events a second committed at (null: the burst, as fast as they go). */
  rate: number | null;
  events: number;
  endpoints: number;
  /** Deliveries received a second, from the phase's first commit to its last receipt. */
  deliveriesPerSecond: number;
  /** Events committed a second (the rate asked for, unless the commits fell behind). */
  committedPerSecond: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /** From the phase's last commit to its last receipt. */
  drainMs: number;
  duplicates: number;
  missing: number;
  stages: Record<Stage, { p50: number; p99: number }>;
  /** From the relay's transaction to the receipt: the latency but for the relay's wait. */
  afterRelay: { p50: number; p99: number };
  /** The mean of each stage over the deliveries at or above the p99. */
  tail: Record<Stage, number>;
}

export interface BackendResult {
  backend: 'postgres' | 'redis';
  results: PhaseResult[];
}

export const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;

const ascending = (values: number[]) => [...values].sort((a, b) => a - b);
const mean = (values: number[]) =>
  values.length === 0 ? Number.NaN : values.reduce((sum, v) => sum + v, 0) / values.length;

export function summarizePhase(input: {
  name: PhaseResult['name'];
  rate: number | null;
  events: number;
  endpoints: number;
  started: number;
  committed: number;
  deliveries: Delivery[];
  duplicates: number;
  missing: number;
}): PhaseResult {
  const { deliveries } = input;
  const latency = (d: Delivery) => d.received - d.committed;
  const totals = ascending(deliveries.map(latency));
  const p99 = percentile(totals, 99);
  const slowest = deliveries.filter((d) => latency(d) >= p99);
  const last = Math.max(...deliveries.map((d) => d.received));
  const stageFigures = {} as PhaseResult['stages'];
  const tail = {} as PhaseResult['tail'];
  for (const [name, of] of Object.entries(stages) as [Stage, (d: Delivery) => number][]) {
    const sorted = ascending(deliveries.map(of));
    stageFigures[name] = { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
    tail[name] = mean(slowest.map(of));
  }
  const afterRelay = ascending(deliveries.map((d) => d.received - d.relayed));
  return {
    name: input.name,
    rate: input.rate,
    events: input.events,
    endpoints: input.endpoints,
    deliveriesPerSecond: deliveries.length / ((last - input.started) / 1000),
    committedPerSecond: input.events / ((input.committed - input.started) / 1000),
    p50: percentile(totals, 50),
    p95: percentile(totals, 95),
    p99,
    max: totals.at(-1) ?? Number.NaN,
    drainMs: last - input.committed,
    duplicates: input.duplicates,
    missing: input.missing,
    stages: stageFigures,
    afterRelay: { p50: percentile(afterRelay, 50), p99: percentile(afterRelay, 99) },
    tail,
  };
}

/** A duration: ms below 10 s, else seconds. */
export const duration = (ms: number): string =>
  !Number.isFinite(ms) ? '–' : ms < 10_000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
const ratio = (value: number) => (Number.isFinite(value) ? `${value.toFixed(2)}×` : '–');
const backendName = (backend: BackendResult['backend']) =>
  backend === 'postgres' ? 'PostgreSQL' : 'Redis';
const phase = (result: BackendResult, name: PhaseResult['name']) =>
  result.results.find((p) => p.name === name);

export function burstTable(results: BackendResult[]): string {
  const lines = [
    '| backend | events × endpoints | deliveries/s | commit→receipt p50 | p99 | max | duplicates | missing |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const result of results) {
    const burst = phase(result, 'burst');
    if (!burst) continue;
    lines.push(
      `| ${backendName(result.backend)} | ${burst.events} × ${burst.endpoints} | ${burst.deliveriesPerSecond.toFixed(0)} | ${duration(burst.p50)} | ${duration(burst.p99)} | ${duration(burst.max)} | ${burst.duplicates} | ${burst.missing} |`,
    );
  }
  return lines.join('\n');
}

/**
 * The fixed-rate phases: the rate against the burst's throughput, the latencies, the
 * steady p99 against the trickle's (both measured in the same run, on the same database).
 */
export function steadyTable(results: BackendResult[]): string {
  const lines = [
    '| backend | phase | events/s (deliveries/s) | × burst | p50 | p95 | p99 | max | p99 ÷ trickle p99 | drain | duplicates | missing |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const result of results) {
    const burst = phase(result, 'burst');
    const trickle = phase(result, 'trickle');
    for (const p of result.results) {
      if (p.rate === null) continue;
      const deliveriesPerSecond = p.committedPerSecond * p.endpoints;
      const share = burst ? deliveriesPerSecond / burst.deliveriesPerSecond : Number.NaN;
      const versus = p.name === 'steady' && trickle ? ratio(p.p99 / trickle.p99) : '–';
      lines.push(
        `| ${backendName(result.backend)} | ${p.name} | ${p.committedPerSecond.toFixed(1)} (${deliveriesPerSecond.toFixed(0)}) | ${ratio(share)} | ${duration(p.p50)} | ${duration(p.p95)} | ${duration(p.p99)} | ${duration(p.max)} | ${versus} | ${duration(p.drainMs)} | ${p.duplicates} | ${p.missing} |`,
      );
    }
  }
  return lines.join('\n');
}

/** Each stage's p50 / p99, and what the slowest 1 % of deliveries spent in each. */
export function stageTable(results: BackendResult[]): string {
  const lines = [
    '| backend | phase | relay wait | event job | attempt job | send | relayed → receipt | slowest 1 %: relay / event / attempt / send |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  const pair = (s: { p50: number; p99: number }) => `${duration(s.p50)} / ${duration(s.p99)}`;
  for (const result of results) {
    for (const p of result.results) {
      const t = p.tail;
      lines.push(
        `| ${backendName(result.backend)} | ${p.name} | ${pair(p.stages.relay)} | ${pair(p.stages.event)} | ${pair(p.stages.attempt)} | ${pair(p.stages.send)} | ${pair(p.afterRelay)} | ${duration(t.relay)} / ${duration(t.event)} / ${duration(t.attempt)} / ${duration(t.send)} |`,
      );
    }
  }
  return lines.join('\n');
}
