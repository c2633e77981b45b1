/**
 * npm run bench:cache: the response cache of public reads (src/lib/response-cache.ts) under
 * skewed read loads. The same compiled API (`node dist/server.js`, NODE_ENV=production) is
 * started twice, identical but for CACHE=false / CACHE=true: both with REDIS_URL (its rate
 * limits and bus in Redis either way), a key prefix of the run's own (deleted afterwards),
 * and METRICS_TOKEN; both on one database made and seeded for the run. The load comes from
 * autocannon in a process of its own (load.ts). Per operation, a long list of paths drawn
 * from a Zipf distribution (exponent `--zipf`, 1.0; a fixed seed: every run draws the same):
 *
 * - getPost: GET /api/posts/{id} over every published post;
 * - listPosts: GET /api/posts?limit=20, its following pages (cursors gathered beforehand by
 *   walking the listing) and the first pages at limits 10, 50 and 100;
 * - search: GET /api/posts?limit=20&q=<word> over the seed's nouns, adjectives and rare
 *   words (scripts/seed-data.ts) that some post holds.
 *
 * Both servers are warmed up on every operation; then, in each round, each operation runs on
 * both, one after the other (the order alternating), so that the machine's drift falls on
 * both alike: req/s, p50/p99, the server's CPU per request (/proc), non-2xx; the CPU per
 * request of the run database's PostgreSQL backends and of the Redis server, when they run
 * on this machine (a backend that exits during a run is left out); the hit ratio from the
 * cached server's /metrics (cache_lookups_total) around each run. Ratios are cached /
 * uncached, the median of the rounds' ratios.
 *
 *   npm run bench:cache                     # 1,000 users, 20,000 posts, 3 rounds of 8 s (~3 min)
 *   npm run bench:cache -- --quick          # 200 users, 2,000 posts, 2 rounds of 2 s (~1 min)
 *   npm run bench:cache -- --no-build --rounds 3 --seconds 5 --connections 16 --zipf 1.2
 *   npm run bench:cache -- --cpu-prof       # the cached server under --cpu-prof: its profile per operation
 *   npm run bench:cache -- --env CACHE_VIEW_COUNT_LAG=60s   # more settings, for both servers
 *   npm run bench:cache -- --only getPost   # getPost's workloads only (flat out, fixed rate)
 *
 * BENCH_DATABASE_URL names the PostgreSQL server (the run's database is made there and
 * dropped afterwards), BENCH_REDIS_URL the Redis (default redis://127.0.0.1:6379). The tables
 * go to stdout and bench-results/cache-<time>.{md,json} and cache-latest(-quick).*. The exit
 * code is 1 when a request was not answered 2xx; never for a missed target.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { adjectives, nouns, rareWords } from '../seed-data.js';
import { makeRunDatabase, run } from './fixtures.js';
import {
  helper,
  machineCpu,
  monotonicUs,
  profileSummary,
  runBench,
  writeResults,
} from './helper.js';
import type { LoadJob, LoadMessage, LoadReply } from './load.js';
import { median, ratioOf, type OperationResult, type Run } from './report.js';
import {
  cpuSeconds,
  cpuSecondsOf,
  deleteRedisKeys,
  pidsMatching,
  rssBytes,
  startServer,
  stopServer,
  withClient,
  type Server,
} from './servers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const { values: options } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    connections: { type: 'string' },
    zipf: { type: 'string', default: '1.0' },
    'cpu-prof': { type: 'boolean', default: false },
    /** NAME=value for both servers (CACHE_VIEW_COUNT_LAG=60s...); repeatable. */
    env: { type: 'string', multiple: true, default: [] },
    /** Only the workloads of these operations (getPost, listPosts; repeatable): both servers alike. */
    only: { type: 'string', multiple: true, default: [] },
    /** getPost's fixed rate, req/s. */
    rate: { type: 'string' },
  },
});
const quick = options.quick;
const settings = {
  users: quick ? 200 : 1000,
  posts: quick ? 2000 : 20000,
  rounds: Number(options.rounds ?? (quick ? 2 : 3)),
  seconds: Number(options.seconds ?? (quick ? 2 : 8)),
  warmupSeconds: quick ? 1 : 3,
  connections: Number(options.connections ?? (quick ? 8 : 32)),
  zipf: Number(options.zipf),
  /** Pages of `?limit=20` walked by cursor. */
  pages: quick ? 30 : 200,
  /** The length of each operation's list of paths (taken in turn, again from the start). */
  paths: quick ? 20_000 : 100_000,
  /** getPost's fixed rate, req/s: about half what the uncached server carries here. */
  fixedRate: Number(options.rate ?? (quick ? 500 : 1500)),
};
const fixedRateName = `getPost at ${settings.fixedRate} req/s`;
const serverUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const resultsDir = join(root, 'bench-results');
const cpuProf = options['cpu-prof'];
const extraEnv = Object.fromEntries(
  options.env.map((pair) => {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`--env ${pair}: not NAME=value`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  }),
);
const profileDir = join(resultsDir, 'cache-profile');
/** The cached server's measured runs of each workload (monotonic µs): --cpu-prof's windows. */
const profileWindows = new Map<string, { start: number; end: number }[]>();
const started = Date.now();
const say = (message: string) =>
  console.log(`[${((Date.now() - started) / 1000).toFixed(0)} s] ${message}`);
const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').trim();

// ---------------------------------------------------------------------------------------
// The workloads: Zipf-distributed draws from each operation's paths, ranked by popularity.

/** mulberry32: a small seeded generator, so that every run draws the same paths. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The items in an order of `random`'s (Fisher–Yates): their popularity ranks. */
function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** `count` draws from `ranked`, the item of rank k (from 1) with a weight of 1/k^exponent. */
function zipfDraws(ranked: readonly string[], count: number, seed: number): string[] {
  const random = seeded(seed);
  const cumulative = new Float64Array(ranked.length);
  let total = 0;
  ranked.forEach((_, k) => {
    total += 1 / (k + 1) ** settings.zipf;
    cumulative[k] = total;
  });
  return Array.from({ length: count }, () => {
    const u = random() * total;
    let low = 0;
    let high = ranked.length - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (cumulative[mid]! < u) low = mid + 1;
      else high = mid;
    }
    return ranked[low]!;
  });
}

interface Workload {
  name: string;
  /** The cache's operation label of its lookups. */
  operation: string;
  /** The distinct paths, most popular first. */
  ranked: string[];
  paths: string[];
  /** Distinct paths in `paths`. */
  distinct: number;
  /** The share of the draws that the 10 most popular paths take. */
  top10Share: number;
  /** Requests a second over all connections; unset: as fast as answered. */
  rate?: number;
}

function workload(name: string, operation: string, ranked: string[], seed: number): Workload {
  const paths = zipfDraws(ranked, settings.paths, seed);
  const top = new Set(ranked.slice(0, 10));
  return {
    name,
    operation,
    ranked,
    paths,
    distinct: new Set(paths).size,
    top10Share: paths.filter((p) => top.has(p)).length / paths.length,
  };
}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  if (response.status !== 200) throw new Error(`GET ${url}: ${response.status}`);
  return (await response.json()) as T;
}

type Page = { items: unknown[]; nextCursor: string | null };

/** The three workloads, their inputs read from the database and the uncached server. */
async function workloads(databaseUrl: string, base: string): Promise<Workload[]> {
  const { rows } = await withClient(databaseUrl, (client) =>
    client.query<{ id: string }>('select id from posts where published_at is not null order by id'),
  );
  const postPaths = shuffled(
    rows.map((r) => `/api/posts/${r.id}`),
    seeded(1),
  );

  // The listing walked by cursor; the first pages at other limits rank among the first.
  const pages: string[] = [];
  let path: string | null = '/api/posts?limit=20';
  while (path && pages.length < settings.pages) {
    pages.push(path);
    const page: Page = await getJson<Page>(`${base}${path}`);
    path = page.nextCursor
      ? `/api/posts?limit=20&cursor=${encodeURIComponent(page.nextCursor)}`
      : null;
  }
  const listPaths = [
    pages[0]!,
    '/api/posts?limit=10',
    pages[1] ?? '/api/posts?limit=50',
    '/api/posts?limit=50',
    '/api/posts?limit=100',
    ...pages.slice(2),
  ].filter((p, i, all) => all.indexOf(p) === i);

  // Search: the seed's words that some published post holds (the others would find nothing).
  const vocabulary = [...nouns, ...adjectives, ...rareWords];
  const found = await Promise.all(
    vocabulary.map(async (word) => {
      const page = await getJson<Page>(`${base}/api/posts?limit=20&q=${encodeURIComponent(word)}`);
      return page.items.length > 0 ? word : null;
    }),
  );
  const words = shuffled(
    found.filter((word): word is string => word !== null),
    seeded(2),
  );
  const searchPaths = words.map((word) => `/api/posts?limit=20&q=${encodeURIComponent(word)}`);

  return [
    workload('getPost', 'getPost', postPaths, 11),
    workload('listPosts', 'listPosts', listPaths, 12),
    workload('search (listPosts ?q=)', 'listPosts', searchPaths, 13),
    // The latency at one load both servers can carry, sent evenly (an open loop, load.ts):
    // a p99 of a saturated server says how its queue grows, this one what a request costs.
    { ...workload(fixedRateName, 'getPost', postPaths, 11), rate: settings.fixedRate },
  ];
}

// ---------------------------------------------------------------------------------------
// The cache's counters, from /metrics.

interface Counters {
  hit: number;
  miss: number;
  bypass: number;
  fills: number;
  invalidations: number;
  errors: number;
}

/** The cache's counters of `operation`, summed over every series of the exposition. */
async function counters(server: Server, token: string, operation: string): Promise<Counters> {
  const response = await fetch(`${server.base}/metrics`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (response.status !== 200) throw new Error(`GET /metrics: ${response.status}`);
  const text = await response.text();
  const out: Counters = { hit: 0, miss: 0, bypass: 0, fills: 0, invalidations: 0, errors: 0 };
  for (const line of text.split('\n')) {
    const match = /^(cache_\w+)(?:\{([^}]*)\})? ([\d.e+-]+)$/.exec(line);
    if (!match) continue;
    const [, name, labelText = '', value] = match;
    const labels: Record<string, string | undefined> = {};
    for (const label of labelText.matchAll(/(\w+)="([^"]*)"/g)) labels[label[1]!] = label[2];
    const n = Number(value);
    if (name === 'cache_errors_total') out.errors += n;
    if (labels.operation !== operation) continue;
    if (name === 'cache_lookups_total' && labels.result && labels.result in out)
      out[labels.result as 'hit' | 'miss' | 'bypass'] += n;
    if (name === 'cache_fills_total') out.fills += n;
    if (name === 'cache_invalidations_total') out.invalidations += n;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The measured runs.

interface CacheRun extends Run {
  mode: 'off' | 'on';
  seconds: number;
  /** The cache's counters over the run (the cached server's; zeros on the other). */
  cache: Counters;
  /** CPU in % of one core over the run: the server, the load generator, the machine. */
  cpuShares: { server: number; loadGenerator: number; machine: number };
  /** The CPU µs per request of the run's PostgreSQL backends and of the Redis server. */
  postgresUsPerRequest: number;
  redisUsPerRequest: number;
}

/** The run database's backends and the Redis server's process, if they are on this machine. */
interface Others {
  database: string;
  redis: number[];
}

type Loader = ReturnType<typeof helper<LoadMessage, LoadReply>>;

async function measure(
  loader: Loader,
  others: Others,
  server: Server,
  mode: 'off' | 'on',
  token: string,
  work: Workload,
  round: number,
  seconds: number,
): Promise<CacheRun> {
  const countersBefore = await counters(server, token, work.operation);
  const job: LoadJob = {
    url: server.base,
    method: 'GET',
    seconds,
    connections: settings.connections,
    paths: work.paths,
    ...(work.rate ? { rate: work.rate, openLoop: true } : {}),
  };
  const pids = [server.pid, loader.child.pid!];
  // PostgreSQL names a backend's database in its process title.
  const otherPids = [pidsMatching(` ${others.database} `), others.redis];
  const othersBefore = otherPids.map(cpuSecondsOf);
  const before = pids.map(cpuSeconds);
  const machineBefore = machineCpu();
  const start = performance.now();
  const reply = await loader.ask({ jobs: [job] });
  const elapsed = (performance.now() - start) / 1000;
  const [cpu = 0, loadCpu = 0] = pids.map((pid, i) => cpuSeconds(pid) - before[i]!);
  // What each used over the run; one that exited meanwhile (an idle backend) is left out.
  const [postgresCpu = 0, redisCpu = 0] = otherPids.map((list, i) =>
    cpuSecondsOf(list).reduce((sum, after, j) => {
      const used = after - othersBefore[i]![j]!;
      return Number.isFinite(used) ? sum + used : sum;
    }, 0),
  );
  const machine = machineCpu();
  const countersAfter = await counters(server, token, work.operation);
  const result = reply.results![0]!;
  const share = (used: number) => (100 * used) / elapsed;
  const perRequest = (seconds: number) =>
    result.requests > 0 ? (seconds * 1e6) / result.requests : Number.NaN;
  const cache = Object.fromEntries(
    Object.entries(countersAfter).map(([key, value]) => [
      key,
      value - countersBefore[key as keyof Counters],
    ]),
  ) as unknown as Counters;
  return {
    mode,
    round,
    seconds: elapsed,
    requests: result.requests,
    perSecond: result.perSecond,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    cpuUsPerRequest: perRequest(cpu),
    postgresUsPerRequest: perRequest(postgresCpu),
    redisUsPerRequest: others.redis.length > 0 ? perRequest(redisCpu) : Number.NaN,
    rssBytes: rssBytes(server.pid),
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    statuses: result.statuses,
    cache,
    cpuShares: {
      server: share(cpu),
      loadGenerator: share(loadCpu),
      machine:
        (100 * availableParallelism() * (machine.busy - machineBefore.busy)) /
        (machine.total - machineBefore.total),
    },
  };
}

// ---------------------------------------------------------------------------------------
// The report.

const hitRatio = (c: Counters) => {
  const lookups = c.hit + c.miss + c.bypass;
  return lookups > 0 ? c.hit / lookups : Number.NaN;
};
const fixed = (value: number, digits: number) =>
  Number.isFinite(value) ? value.toFixed(digits) : '–';
const percent = (value: number) => (Number.isFinite(value) ? `${(100 * value).toFixed(1)} %` : '–');

interface Summary {
  name: string;
  operation: string;
  distinct: number;
  ranked: number;
  top10Share: number;
  /** off, on, ratio on/off (median of the rounds' ratios). */
  perSecond: [number, number, number];
  cpuUs: [number, number, number];
  /** PostgreSQL's backends' and Redis's CPU µs per request: off, on. */
  postgresUs: [number, number];
  redisUs: [number, number];
  /** The server's, its PostgreSQL backends' and Redis's CPU µs per request together. */
  allInUs: [number, number, number];
  p50Ms: [number, number, number];
  p99Ms: [number, number, number];
  non2xx: [number, number];
  /** The cached server's hits / lookups over all its measured runs, and each run's. */
  hitRatio: number;
  hitRatios: number[];
  lookups: Counters;
  /** The spread of the uncached server's req/s between its runs (max / min − 1). */
  offSpread: number;
}

function summarize(work: Workload, result: OperationResult): Summary {
  const off = result.reference as CacheRun[];
  const on = result.project as CacheRun[];
  const both = (figure: (run: Run) => number): [number, number, number] => [
    median(off.map(figure)),
    median(on.map(figure)),
    ratioOf(result, figure),
  ];
  const lookups = on.reduce<Counters>(
    (sum, r) =>
      Object.fromEntries(
        Object.entries(sum).map(([key, value]) => [key, value + r.cache[key as keyof Counters]]),
      ) as unknown as Counters,
    { hit: 0, miss: 0, bypass: 0, fills: 0, invalidations: 0, errors: 0 },
  );
  const offRates = off.map((r) => r.perSecond);
  return {
    name: work.name,
    operation: work.operation,
    distinct: work.distinct,
    ranked: work.ranked.length,
    top10Share: work.top10Share,
    perSecond: both((r) => r.perSecond),
    cpuUs: both((r) => r.cpuUsPerRequest),
    allInUs: both((r) => {
      const run = r as CacheRun;
      return run.cpuUsPerRequest + run.postgresUsPerRequest + (run.redisUsPerRequest || 0);
    }),
    postgresUs: [
      median(off.map((r) => r.postgresUsPerRequest)),
      median(on.map((r) => r.postgresUsPerRequest)),
    ],
    redisUs: [
      median(off.map((r) => r.redisUsPerRequest)),
      median(on.map((r) => r.redisUsPerRequest)),
    ],
    p50Ms: both((r) => r.p50Ms),
    p99Ms: both((r) => r.p99Ms),
    non2xx: [
      off.reduce((n, r) => n + r.non2xx + r.errors, 0),
      on.reduce((n, r) => n + r.non2xx + r.errors, 0),
    ],
    hitRatio: hitRatio(lookups),
    hitRatios: on.map((r) => hitRatio(r.cache)),
    lookups,
    offSpread: Math.max(...offRates) / Math.min(...offRates) - 1,
  };
}

const triple = (values: [number, number, number], digits: number) =>
  `${fixed(values[0], digits)} / ${fixed(values[1], digits)} | **${fixed(values[2], 2)}×**`;

function resultsTable(summaries: Summary[]): string {
  return [
    '| operation | paths drawn (distinct / of) | top 10 share | req/s off / on | ratio | server CPU µs/req off / on | ratio | PostgreSQL / Redis CPU µs/req off; on | server + PostgreSQL + Redis CPU µs/req off / on | ratio | p50 ms off / on | ratio | p99 ms off / on | ratio | non-2xx off / on | hit ratio (each run) | lookups: hit / miss / bypass; fills |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...summaries.map(
      (s) =>
        `| ${s.name} | ${s.distinct} / ${s.ranked} | ${percent(s.top10Share)} | ${triple(s.perSecond, 0)} | ${triple(s.cpuUs, 0)} | ${fixed(s.postgresUs[0], 0)} / ${fixed(s.redisUs[0], 0)}; ${fixed(s.postgresUs[1], 0)} / ${fixed(s.redisUs[1], 0)} | ${triple(s.allInUs, 0)} | ${triple(s.p50Ms, 2)} | ${triple(s.p99Ms, 2)} | ${s.non2xx[0]} / ${s.non2xx[1]} | **${percent(s.hitRatio)}** (${s.hitRatios.map(percent).join(', ')}) | ${s.lookups.hit} / ${s.lookups.miss} / ${s.lookups.bypass}; ${s.lookups.fills} |`,
    ),
  ].join('\n');
}

function runsTable(results: OperationResult[]): string {
  const rows = results.flatMap((result) =>
    [...(result.reference as CacheRun[]), ...(result.project as CacheRun[])]
      .sort((a, b) => a.round - b.round || a.mode.localeCompare(b.mode))
      .map(
        (r) =>
          `| ${result.name} | ${r.round} | ${r.mode} | ${fixed(r.perSecond, 0)} | ${fixed(r.cpuUsPerRequest, 0)} / ${fixed(r.postgresUsPerRequest, 0)} / ${fixed(r.redisUsPerRequest, 0)} | ${fixed(r.p50Ms, 2)} / ${fixed(r.p99Ms, 2)} | ${fixed(r.cpuShares.server, 0)} / ${fixed(r.cpuShares.loadGenerator, 0)} / ${fixed(r.cpuShares.machine, 0)} | ${r.mode === 'on' ? percent(hitRatio(r.cache)) : '–'} |`,
      ),
  );
  return [
    '| operation | round | cache | req/s | CPU µs/req: server / PostgreSQL / Redis | p50 / p99 ms | CPU %: server / load generator / machine (of 200) | hit ratio |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

interface Target {
  name: string;
  figure: string;
  pass: boolean;
}

function targetsOf(summaries: Summary[]): Target[] {
  const goals: { name: string; minimum: number; note?: string }[] = [
    { name: 'listPosts', minimum: 3 },
    { name: 'search (listPosts ?q=)', minimum: 10 },
    { name: 'getPost', minimum: 1, note: 'no worse' },
  ];
  const atRate = summaries.find((x) => x.name === fixedRateName);
  const latency: Target[] = atRate
    ? [
        {
          name: `${fixedRateName}: p99 with the cache ≤ without (no worse)`,
          figure: `p99 ${fixed(atRate.p99Ms[2], 2)}×, p50 ${fixed(atRate.p50Ms[2], 2)}×, server CPU/req ${fixed(atRate.cpuUs[2], 2)}×; hit ratio ${percent(atRate.hitRatio)}`,
          pass: atRate.p99Ms[2] <= 1,
        },
      ]
    : [];
  return [
    ...latency,
    ...goals.flatMap((goal) => {
      const s = summaries.find((x) => x.name === goal.name);
      if (!s) return [];
      return [
        {
          name: `${goal.name}: req/s with the cache ≥ ${goal.minimum}× without${goal.note ? ` (${goal.note})` : ''}`,
          figure: `req/s ${fixed(s.perSecond[2], 2)}×, server CPU/req ${fixed(s.cpuUs[2], 2)}× (with PostgreSQL's and Redis's ${fixed(s.allInUs[2], 2)}×), p99 ${fixed(s.p99Ms[2], 2)}×; hit ratio ${percent(s.hitRatio)}; the uncached runs' req/s spread ${percent(s.offSpread)}`,
          pass: s.perSecond[2] >= goal.minimum,
        },
      ];
    }),
  ];
}

// ---------------------------------------------------------------------------------------

async function main(): Promise<number> {
  mkdirSync(resultsDir, { recursive: true });
  if (cpuProf) mkdirSync(profileDir, { recursive: true });
  const loadBefore = loadAverage();
  say(
    `${quick ? 'quick' : 'full'} run: ${settings.rounds} round(s) of ${settings.seconds} s per operation and server, ${settings.connections} connections, Zipf exponent ${settings.zipf}; ${settings.users} users, ${settings.posts} posts; ${availableParallelism()} cores; load ${loadBefore}`,
  );
  if (!options['no-build']) {
    say('npm run build');
    await run('npm', ['run', 'build', '--silent'], {});
  }
  const secret = randomBytes(32).toString('hex');
  const database = await makeRunDatabase(serverUrl, 'bench_cache', settings, secret, say);
  const prefix = `bench:cache-${randomBytes(4).toString('hex')}:`;
  const token = randomBytes(24).toString('hex');
  const servers: Server[] = [];
  const loader = helper<LoadMessage, LoadReply>('load.ts');
  const results: OperationResult[] = [];
  const works: Workload[] = [];
  try {
    // Identical but for CACHE; both on the same Redis, under the same prefix (the uncached
    // one writes no cache key: its rate limits' keys only).
    const env = (cache: boolean) => ({
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      DATABASE_URL: database.url,
      JWT_SECRET: secret,
      PUBLIC_URL: 'http://127.0.0.1',
      LOG_LEVEL: 'warn',
      RATE_LIMIT_MAX: '1000000000',
      METRICS_TOKEN: token,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: prefix,
      ...extraEnv,
      CACHE: String(cache),
    });
    const starting = await Promise.allSettled(
      (['off', 'on'] as const).map((mode) =>
        startServer({
          name: `API (CACHE=${mode === 'on'})`,
          args: [
            ...(cpuProf && mode === 'on' ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
            join(root, 'dist/server.js'),
          ],
          env: env(mode === 'on'),
          readyPath: '/ready',
          logFile: join(resultsDir, `cache-api-${mode}.log`),
        }),
      ),
    );
    for (const outcome of starting) if (outcome.status === 'fulfilled') servers.push(outcome.value);
    const failed = starting.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    const [off, on] = servers as [Server, Server];
    const redisPort = new URL(redisUrl).port || '6379';
    const others: Others = {
      database: database.name,
      redis: pidsMatching(`:${redisPort}`).filter((pid) =>
        readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('redis-server'),
      ),
    };

    say('gathering the paths: post ids, the listing by cursor, the words search finds');
    works.push(
      ...(await workloads(database.url, off.base)).filter(
        (w) => options.only.length === 0 || options.only.includes(w.operation),
      ),
    );
    for (const w of works) {
      say(
        `${w.name}: ${w.ranked.length} paths ranked, ${w.distinct} distinct among ${w.paths.length} drawn; the 10 most popular take ${percent(w.top10Share)}`,
      );
    }

    say(`warm-up: ${settings.warmupSeconds} s per operation and server`);
    for (const w of works) {
      for (const [server, mode] of [
        [off, 'off'],
        [on, 'on'],
      ] as const)
        await measure(loader, others, server, mode, token, w, 0, settings.warmupSeconds);
    }

    for (const w of works)
      results.push({ name: w.name, targeted: true, project: [], reference: [] });
    for (let round = 1; round <= settings.rounds; round += 1) {
      for (const [index, w] of works.entries()) {
        const order =
          (round + index) % 2 === 0
            ? ([
                [off, 'off'],
                [on, 'on'],
              ] as const)
            : ([
                [on, 'on'],
                [off, 'off'],
              ] as const);
        for (const [server, mode] of order) {
          const window = { start: monotonicUs(), end: Number.POSITIVE_INFINITY };
          const measured = await measure(
            loader,
            others,
            server,
            mode,
            token,
            w,
            round,
            settings.seconds,
          );
          window.end = monotonicUs();
          if (mode === 'on')
            profileWindows.set(w.name, [...(profileWindows.get(w.name) ?? []), window]);
          results[index]![mode === 'on' ? 'project' : 'reference'].push(measured);
          say(
            `round ${round}, ${w.name}, cache ${mode}: ${measured.perSecond.toFixed(0)} req/s, ${measured.cpuUsPerRequest.toFixed(0)} µs CPU/req (PostgreSQL ${measured.postgresUsPerRequest.toFixed(0)}, Redis ${measured.redisUsPerRequest.toFixed(0)}), p99 ${measured.p99Ms.toFixed(1)} ms${mode === 'on' ? `, hits ${percent(hitRatio(measured.cache))}` : ''}`,
          );
          if (measured.non2xx + measured.errors > 0) {
            console.error(
              `  ${w.name} with the cache ${mode}: ${measured.non2xx} non-2xx, ${measured.errors} errors; statuses ${JSON.stringify(measured.statuses)}`,
            );
          }
        }
      }
    }
  } finally {
    loader.stop();
    await Promise.all(servers.map(stopServer));
    await deleteRedisKeys(redisUrl, prefix).catch(() => undefined);
    await database.drop();
  }

  const loadAfter = loadAverage();
  const summaries = works.map((w, i) => summarize(w, results[i]!));
  const targets = targetsOf(summaries);
  const cacheErrors = results.reduce(
    (n, r) => n + (r.project as CacheRun[]).reduce((m, run) => m + run.cache.errors, 0),
    0,
  );
  const header = `npm run bench:cache${quick ? ' --quick' : ''}: ${new Date().toISOString()}, Node ${process.version}, ${availableParallelism()} cores; load (/proc/loadavg) ${loadBefore} before, ${loadAfter} after. ${settings.users.toLocaleString('en')} users, ${settings.posts.toLocaleString('en')} posts; ${settings.rounds} round(s) of ${settings.seconds} s per operation and server at ${settings.connections} connections, after a ${settings.warmupSeconds} s warm-up; paths drawn from a Zipf distribution of exponent ${settings.zipf}.${options.env.length > 0 ? ` Both servers with ${options.env.map((e) => `\`${e}\``).join(', ')}.` : ''} Ratios: cache on / off, the median of the rounds' ratios.`;
  const markdown = [
    header,
    '',
    resultsTable(summaries),
    '',
    '| target | figure | |',
    '| --- | --- | --- |',
    ...targets.map((t) => `| ${t.name} | ${t.figure} | ${t.pass ? 'PASS' : 'FAIL'} |`),
    '',
    `Cache errors (cache_errors_total) during the measured runs: ${cacheErrors}. getPost "no worse" allows for the noise: two runs of the same server here differ by up to the spread given.`,
    '',
    '### Each run',
    '',
    runsTable(results),
    ...(cpuProf
      ? [
          '',
          '### CPU profile of the cached server (self time), per operation',
          '',
          "Under `--cpu-prof` the cached server is slower than the other: the ratios of this run are not the cache's.",
          ...works.flatMap((w) => [
            '',
            `#### ${w.name}`,
            '',
            profileSummary(
              profileDir,
              profileWindows.get(w.name) ?? [],
              `its measured runs of ${w.name}`,
            ),
          ]),
        ]
      : []),
  ].join('\n');
  console.log(`\n${markdown}\n`);
  for (const t of targets)
    console.log(`${t.pass ? 'PASS' : 'FAIL'} ${t.name}: ${t.figure.split(';')[0]}`);
  writeResults(
    resultsDir,
    { kind: 'cache', startedAt: started, quick },
    { settings, loadBefore, loadAfter, summaries, targets, results },
    markdown,
  );
  const failed = summaries.some((s) => s.non2xx[0] + s.non2xx[1] > 0);
  if (failed) console.error('\nsome requests were not answered 2xx (see above): the bench failed');
  return failed ? 1 : 0;
}

runBench(main, () => say('done'));
