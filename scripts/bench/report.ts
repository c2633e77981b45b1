/** The figures of `npm run bench`: medians, ratios, the markdown table and the targets. */

export interface Run {
  round: number;
  requests: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerRequest: number;
  rssBytes: number;
  non2xx: number;
  errors: number;
  statuses: Record<string, number>;
}

export interface OperationResult {
  name: string;
  /** Whether the read targets apply (every read and recordPostView). */
  targeted: boolean;
  project: Run[];
  reference: Run[];
}

export interface Target {
  name: string;
  figure: string;
  pass: boolean;
}

export const median = (values: number[]): number => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** The median over rounds of project / reference, each round's pair measured together. */
export function ratioOf(result: OperationResult, figure: (run: Run) => number): number {
  return median(
    result.project.map((run) => {
      const peer = result.reference.find((r) => r.round === run.round);
      return peer ? figure(run) / figure(peer) : Number.NaN;
    }),
  );
}

export interface Summary {
  name: string;
  targeted: boolean;
  perSecond: [number, number, number];
  p50Ms: [number, number, number];
  p99Ms: [number, number, number];
  cpuUs: [number, number, number];
  rssMb: [number, number, number];
  non2xx: [number, number];
  pass: boolean | null;
  failed: boolean;
}

export function summarize(result: OperationResult): Summary {
  const both = <K extends keyof Run>(key: K): [number, number, number] => [
    median(result.project.map((r) => Number(r[key]))),
    median(result.reference.map((r) => Number(r[key]))),
    ratioOf(result, (r) => Number(r[key])),
  ];
  const non2xx: [number, number] = [
    result.project.reduce((n, r) => n + r.non2xx + r.errors, 0),
    result.reference.reduce((n, r) => n + r.non2xx + r.errors, 0),
  ];
  const perSecond = both('perSecond');
  const cpuUs = both('cpuUsPerRequest');
  const rss = both('rssBytes');
  return {
    name: result.name,
    targeted: result.targeted,
    perSecond,
    p50Ms: both('p50Ms'),
    p99Ms: both('p99Ms'),
    cpuUs,
    rssMb: [rss[0] / 2 ** 20, rss[1] / 2 ** 20, rss[2]],
    non2xx,
    pass: result.targeted ? cpuUs[2] <= 1.05 && perSecond[2] >= 0.95 : null,
    failed: non2xx[0] + non2xx[1] > 0,
  };
}

const fixed = (value: number, digits: number) =>
  Number.isFinite(value) ? value.toFixed(digits) : '–';
const ratio = (value: number) => `${fixed(value, 2)}×`;

export function markdownTable(summaries: Summary[]): string {
  const lines = [
    '| operation | req/s (API / ref) | ratio | p50 ms (API / ref) | ratio | p99 ms (API / ref) | ratio | CPU µs/req (API / ref) | ratio | RSS MB (API / ref) | non-2xx | target |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of summaries) {
    const target = s.failed
      ? '**FAIL** (non-2xx)'
      : s.pass === null
        ? '–'
        : s.pass
          ? 'PASS'
          : 'FAIL';
    lines.push(
      `| ${s.name} | ${fixed(s.perSecond[0], 0)} / ${fixed(s.perSecond[1], 0)} | ${ratio(s.perSecond[2])} | ${fixed(s.p50Ms[0], 2)} / ${fixed(s.p50Ms[1], 2)} | ${ratio(s.p50Ms[2])} | ${fixed(s.p99Ms[0], 2)} / ${fixed(s.p99Ms[1], 2)} | ${ratio(s.p99Ms[2])} | ${fixed(s.cpuUs[0], 0)} / ${fixed(s.cpuUs[1], 0)} | ${ratio(s.cpuUs[2])} | ${fixed(s.rssMb[0], 0)} / ${fixed(s.rssMb[1], 0)} | ${s.non2xx[0]} / ${s.non2xx[1]} | ${target} |`,
    );
  }
  return lines.join('\n');
}

export function targetsTable(targets: Target[]): string {
  return [
    '| target | figure | |',
    '|---|---|---|',
    ...targets.map((t) => `| ${t.name} | ${t.figure} | ${t.pass ? 'PASS' : 'FAIL'} |`),
  ].join('\n');
}
