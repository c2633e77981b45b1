/**
 * npm run bench:live: GET /api/live (openapi/asyncapi.yaml) with many subscribers. The
 * compiled API runs as a process of its own (`node dist/server.js`, NODE_ENV=production,
 * JOBS_IN_PROCESS=true: its relay publishes on the live bus), on a new database seeded for
 * the run; the sockets live in another process (live-clients.ts), the read load in a third
 * (autocannon, load.ts), so that only the server's work is the server's. Per bus
 * (PostgreSQL's NOTIFY, then Redis pub/sub), in phases:
 *
 * 1. reads without sockets: getPost and listPosts (autocannon), p50/p99 and req/s; then
 *    posts published with no socket open (the server's CPU per publish, without fan-out);
 * 2. in each round (`--rounds`, 2): the reads again while a post is published every
 *    1/`--rate` s, with no socket open (what the events cost without their fan-out); then
 *    N sockets opened (default 1,000), each subscribed to `posts`, every 10th also to a
 *    `posts/{id}`: the server's RSS before and after, per connection;
 * 3. in the first round, posts published one at a time through the REST API (`--events`,
 *    `--interval` apart): for every (socket, event) pair the time from the commit to the
 *    receipt. The commit lies between the event's occurred_at (its transaction's start)
 *    and the publish request's response, so both are given: "from timestamp" is at least
 *    the latency, "from response" at most. Per event: the relay's wait, relay → the first
 *    socket, the first socket → the last; the server's CPU per frame delivered (its CPU at
 *    rest and the publishes' own aside), and with `--cpu-prof` its profile over that span;
 * 4. the reads with the sockets open while a post is published every 1/`--rate` s;
 * 5. the sockets closed, the reads without sockets or events once more. Each run with
 *    sockets lies between two without: its ratio is to their mean (the machine's speed
 *    drifts), the median over the rounds.
 *
 *   npm run bench:live                       # 1,000 sockets, both buses (~6 min)
 *   npm run bench:live -- --quick            # 200 sockets, 10 events, 2 s reads, PostgreSQL only (~50 s)
 *   npm run bench:live -- --sockets 2000 --events 100 --bus redis --no-build
 *   npm run bench:live -- --cpu-prof         # the API under --cpu-prof, fan-out only (no reads)
 *
 * BENCH_DATABASE_URL names the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/…;
 * the run's database is made there and dropped afterwards); BENCH_REDIS_URL the Redis
 * (default redis://127.0.0.1:6379; a key prefix of the run's own, deleted afterwards). The
 * tables go to stdout and bench-results/live-<time>.{md,json} and live-latest(-quick).*.
 * The exit code is 1 when a socket missed an event, was closed, or a read was not 2xx.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { accessTokens, makeRunDatabase, makeSessions, readInputs, run } from './fixtures.js';
import {
  helper,
  machineCpu,
  monotonicUs,
  profileSummary,
  runBench,
  writeResults,
} from './helper.js';
import type { ClientsCommand, ClientsReply } from './live-clients.js';
import {
  fanOutTable,
  median,
  memoryTable,
  readsTable,
  slowConsumerTable,
  summarizeFanOut,
  type BusResult,
  type FanOutResult,
  type MemoryResult,
  type Published,
  type ReadResult,
  type ReadRun,
} from './live-report.js';
import { largeContent, slowConsumer, slowConsumerDrafts } from './live-slow.js';
import type { LoadJob, LoadMessage, LoadReply, LoadResult } from './load.js';
import {
  cpuSeconds,
  rssBytes,
  startServer,
  stopServer,
  deleteRedisKeys,
  withClient,
} from './servers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const { values: options } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
    sockets: { type: 'string' },
    'every-nth': { type: 'string', default: '10' },
    events: { type: 'string' },
    interval: { type: 'string' },
    seconds: { type: 'string' },
    connections: { type: 'string' },
    rate: { type: 'string', default: '10' },
    bus: { type: 'string' },
    rounds: { type: 'string' },
    'no-slow': { type: 'boolean', default: false },
  },
});
const quick = options.quick;
const cpuProf = options['cpu-prof'];
const settings = {
  sockets: Number(options.sockets ?? (quick ? 200 : 1000)),
  everyNth: Number(options['every-nth']),
  events: Number(options.events ?? (quick ? 10 : 50)),
  intervalMs: Number(options.interval ?? (quick ? 150 : 250)),
  seconds: Number(options.seconds ?? (quick ? 2 : 5)),
  warmupSeconds: quick ? 1 : 2,
  connections: Number(options.connections ?? (quick ? 8 : 32)),
  rate: Number(options.rate),
  users: quick ? 200 : 1000,
  posts: quick ? 2000 : 20000,
  warmupEvents: 3,
  rounds: Number(options.rounds ?? (quick ? 1 : 2)),
  reads: !cpuProf,
  slowConsumer: !cpuProf && !options['no-slow'],
};
const busOption = options.bus ?? (quick ? 'postgres' : 'both');
const buses = busOption === 'both' ? ['postgres', 'redis'] : [busOption];
const serverUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const resultsDir = join(root, 'bench-results');
const profileDir = join(resultsDir, 'live-profile');

const now = () => performance.timeOrigin + performance.now();
/** The one-at-a-time fan-out of the last bus run (monotonic µs): the profile's window. */
const profileWindow = { start: 0, end: Number.POSITIVE_INFINITY };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const started = Date.now();
const say = (message: string) =>
  console.log(`[${((Date.now() - started) / 1000).toFixed(0)} s] ${message}`);

// ---------------------------------------------------------------------------------------
// The database: made for the run, seeded, dropped at the end.

/** The events of these posts' publishing: occurred_at and relayed_at, ms since 1970. */
async function eventTimes(url: string, posts: string[]) {
  const { rows } = await withClient(url, (client) =>
    client.query<{ post: string; occurred: string; relayed: string | null }>(
      `select subject_id as post, extract(epoch from occurred_at) * 1000 as occurred,
              extract(epoch from relayed_at) * 1000 as relayed
         from events where type = 'post.published' and subject_id = any($1::uuid[])`,
      [posts],
    ),
  );
  return new Map(
    rows.map((r) => [
      r.post,
      { occurredAt: Number(r.occurred), relayedAt: r.relayed === null ? NaN : Number(r.relayed) },
    ]),
  );
}

// ---------------------------------------------------------------------------------------
// One bus's run.

async function runBus(
  bus: 'postgres' | 'redis',
  databaseUrl: string,
  secret: string,
  postIds: string[],
  authorization: string,
): Promise<BusResult> {
  const prefix = `bench:live-${randomBytes(4).toString('hex')}:`;
  const metricsToken = randomBytes(24).toString('hex');
  const env = {
    PATH: process.env.PATH,
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    JWT_SECRET: secret,
    PUBLIC_URL: 'http://127.0.0.1',
    LOG_LEVEL: 'warn',
    JOBS_IN_PROCESS: 'true',
    // Every socket and request comes from 127.0.0.1.
    LIVE_MAX_CONNECTIONS_PER_ADDRESS: String(settings.sockets + 100),
    RATE_LIMIT_MAX: '1000000000',
    // GET /metrics: the slow-consumer phase reads the server's drop of the stalled socket.
    METRICS_TOKEN: metricsToken,
    ...(bus === 'redis' ? { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix } : {}),
  };
  if (cpuProf) mkdirSync(profileDir, { recursive: true });
  const server = await startServer({
    name: `API (${bus} bus)`,
    args: [
      ...(cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
      join(root, 'dist/server.js'),
    ],
    env,
    readyPath: '/ready',
    logFile: join(resultsDir, `live-api-${bus}.log`),
  });
  const loader = helper<LoadMessage, LoadReply>('load.ts');
  const clients = helper<ClientsCommand, ClientsReply>('live-clients.ts');
  const wsUrl = `${server.base.replace(/^http/, 'ws')}/api/live`;
  try {
    // Drafts for every publish of the run, made beforehand: only publishes happen during it.
    const fanOutEvents =
      settings.warmupEvents * 3 +
      settings.events * 2 +
      (settings.slowConsumer ? slowConsumerDrafts(settings.intervalMs, settings.events) : 0);
    const readEvents = settings.reads
      ? Math.ceil(settings.rate * (settings.seconds + 1) * 2 * 2 * settings.rounds) + 20
      : 0;
    say(`${bus}: making ${fanOutEvents + readEvents} drafts`);
    const drafts: string[] = [];
    const createDraft = async (title: string, content: string) => {
      const response = await fetch(`${server.base}/api/posts`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json' },
        body: JSON.stringify({ title, content }),
      });
      if (response.status !== 201) throw new Error(`createPost: ${response.status}`);
      return ((await response.json()) as { id: string }).id;
    };
    const makeDraft = async (i: number) => {
      const content =
        `A post of the live bench, published while ${settings.sockets} sockets listen. `.repeat(4);
      drafts.push(await createDraft(`Live bench ${bus} ${i}`, content));
    };
    const draftCount = fanOutEvents + readEvents;
    for (let i = 0; i < draftCount; i += 8) {
      await Promise.all(
        Array.from({ length: Math.min(8, draftCount - i) }, (_, j) => makeDraft(i + j)),
      );
    }
    const publish = async (post = drafts.pop()): Promise<{ post: string; respondedAt: number }> => {
      if (!post) throw new Error('out of drafts');
      const response = await fetch(`${server.base}/api/posts/${post}/publish`, {
        method: 'POST',
        headers: { authorization },
      });
      const respondedAt = now();
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`publishPost: ${response.status}`);
      return { post, respondedAt };
    };
    /** Publishes `count` posts `intervalMs` apart (or until `until` resolves). */
    const publishSeries = async (intervalMs: number, count: number, until?: Promise<unknown>) => {
      let over = false;
      void until?.then(() => (over = true));
      const out: { post: string; respondedAt: number }[] = [];
      const start = now();
      for (let i = 0; until ? !over : i < count; i += 1) {
        out.push(await publish());
        const wait = start + (i + 1) * intervalMs - now();
        if (wait > 0) await sleep(wait);
      }
      return out;
    };
    /** Waits until every socket received these posts (or 15 s passed). */
    const awaitReceipts = async (posts: string[]) => {
      const deadline = now() + 15_000;
      while (now() < deadline) {
        if ((await clients.ask({ command: 'pending', posts })).pending === 0) return;
        await sleep(50);
      }
    };
    /** The figures of these posts' receipts (awaited first). */
    /** These posts' receipts (awaited first) and their events' times. */
    const gather = async (published: { post: string; respondedAt: number }[]) => {
      const posts = published.map((p) => p.post);
      await awaitReceipts(posts);
      const receipts = (await clients.ask({ command: 'collect', posts })).receipts ?? {};
      const times = await eventTimes(databaseUrl, posts);
      const withTimes: Published[] = published.map((p) => ({
        ...p,
        occurredAt: times.get(p.post)?.occurredAt ?? NaN,
        relayedAt: times.get(p.post)?.relayedAt ?? NaN,
      }));
      return { published: withTimes, receipts };
    };
    const fanOut = async (
      phase: string,
      published: { post: string; respondedAt: number }[],
      cpuUs: number | null = null,
    ): Promise<FanOutResult> => {
      const gathered = await gather(published);
      const summary = summarizeFanOut(
        phase,
        settings.sockets,
        gathered.published,
        gathered.receipts,
        null,
      );
      if (cpuUs !== null && summary.received > 0) summary.cpuUsPerFrame = cpuUs / summary.received;
      return summary;
    };
    const readJobs = (): { operation: string; job: LoadJob }[] => [
      {
        operation: 'getPost',
        job: {
          url: server.base,
          method: 'GET',
          seconds: settings.seconds,
          connections: settings.connections,
          paths: postIds.map((id) => `/api/posts/${id}`),
        },
      },
      {
        operation: 'listPosts',
        job: {
          url: `${server.base}/api/posts?limit=20`,
          method: 'GET',
          seconds: settings.seconds,
          connections: settings.connections,
        },
      },
    ];
    const read = async (job: LoadJob): Promise<ReadRun> => {
      const pids = [server.pid, clients.child.pid!, loader.child.pid!];
      const before = pids.map(cpuSeconds);
      const machineBefore = machineCpu();
      const start = now();
      const reply = await loader.ask({ jobs: [job] });
      const seconds = (now() - start) / 1000;
      const result = reply.results![0] as LoadResult;
      const [cpu, subscribers, loadGenerator] = pids.map((pid, i) => cpuSeconds(pid) - before[i]!);
      const machine = machineCpu();
      const share = (cpuSecondsUsed: number) => (100 * cpuSecondsUsed) / seconds;
      return {
        cpuShares: {
          server: share(cpu!),
          subscribers: share(subscribers!),
          loadGenerator: share(loadGenerator!),
          machine:
            (100 * availableParallelism() * (machine.busy - machineBefore.busy)) /
            (machine.total - machineBefore.total),
        },
        requests: result.requests,
        perSecond: result.perSecond,
        p50Ms: result.p50Ms,
        p99Ms: result.p99Ms,
        non2xx: result.non2xx,
        errors: result.errors + result.timeouts,
        cpuUsPerRequest: result.requests > 0 ? (cpu! * 1e6) / result.requests : NaN,
      };
    };
    /** The server's CPU at rest (nothing sent to it), µs a second, over 3 s (--quick: 1 s). */
    const idleCpu = async () => {
      await sleep(500);
      const cpu = cpuSeconds(server.pid);
      const start = now();
      await sleep(quick ? 1000 : 3000);
      return ((cpuSeconds(server.pid) - cpu) * 1e6) / ((now() - start) / 1000);
    };
    /** The median of 5 samples of the server's RSS, after a second's rest. */
    const restingRss = async () => {
      await sleep(1000);
      const samples: number[] = [];
      for (let i = 0; i < 5; i += 1) {
        samples.push(rssBytes(server.pid));
        await sleep(100);
      }
      return median(samples);
    };

    const postChannels = postIds.slice(0, 20).map((id) => `posts/${id}`);
    const openSockets = async (when: string) => {
      const rssBefore = await restingRss();
      say(`${bus}: ${when}: opening ${settings.sockets} sockets`);
      const opened = (
        await clients.ask({
          command: 'open',
          url: wsUrl,
          sockets: settings.sockets,
          postChannels,
          everyNth: settings.everyNth,
          concurrency: 50,
        })
      ).opened!;
      const rssOpen = await restingRss();
      say(
        `${bus}: ${opened.sockets} sockets, ${opened.subscriptions} subscriptions in ${(opened.ms / 1000).toFixed(1)} s; RSS ${(rssBefore / 2 ** 20).toFixed(1)} → ${(rssOpen / 2 ** 20).toFixed(1)} MB`,
      );
      return { rssBefore, rssOpen, opened };
    };
    // The large post of the slow-consumer phase, published before any socket opens.
    const bigPost = settings.slowConsumer
      ? (await publish(await createDraft(`Live bench ${bus}: a large post`, largeContent(0)))).post
      : null;
    const memory: MemoryResult[] = [];
    // The memory per connection first, on the server as it started (a few publishes aside):
    // later, the heap the reads grew has room that takes the sockets without growing.
    await publishSeries(settings.intervalMs, settings.warmupEvents);
    {
      const { rssBefore, rssOpen, opened } = await openSockets('as started');
      await clients.ask({ command: 'close' });
      memory.push({
        round: 0,
        sockets: opened.sockets,
        subscriptions: opened.subscriptions,
        openMs: opened.ms,
        rssBefore,
        rssOpen,
        rssAfterEvents: Number.NaN,
        rssClosed: await restingRss(),
      });
    }

    // Warm-up: the reads, and a few publishes (the relay's and the bus's first use).
    say(`${bus}: warm-up`);
    if (settings.reads) {
      for (const { job } of readJobs()) await read({ ...job, seconds: settings.warmupSeconds });
    }
    await publishSeries(settings.intervalMs, settings.warmupEvents);

    // 1. The reads without sockets; the CPU of a publish without fan-out.
    const without = new Map<string, ReadRun[]>();
    const withSockets = new Map<string, { run: ReadRun; eventsPerSecond: number }[]>();
    const readsWithout = async () => {
      if (!settings.reads) return;
      say(`${bus}: reads without sockets (${settings.seconds} s each)`);
      for (const { operation, job } of readJobs())
        without.set(operation, [...(without.get(operation) ?? []), await read(job)]);
    };
    /** Each read while a post is published every 1/rate s; the posts published. */
    const readsWithEvents = async (
      runs: Map<string, { run: ReadRun; eventsPerSecond: number }[]>,
      what: string,
    ) => {
      const published: { post: string; respondedAt: number }[] = [];
      for (const { operation, job } of readJobs()) {
        say(`${bus}: ${operation} with ${what}, ${settings.rate} events/s`);
        const running = read(job);
        const t0 = now();
        const series = await publishSeries(1000 / settings.rate, 0, running);
        const eventsPerSecond = series.length / ((now() - t0) / 1000);
        published.push(...series);
        runs.set(operation, [
          ...(runs.get(operation) ?? []),
          { run: await running, eventsPerSecond },
        ]);
      }
      return published;
    };
    const eventsOnly = new Map<string, { run: ReadRun; eventsPerSecond: number }[]>();
    await readsWithout();
    say(`${bus}: ${settings.events} publishes without sockets`);
    // The server's CPU over the publishes and half a second after: the same span is
    // measured with the sockets open, the difference is the fan-out's.
    const idleUs = await idleCpu();
    const quietCpu = cpuSeconds(server.pid);
    const quietStart = now();
    await publishSeries(settings.intervalMs, settings.events);
    await sleep(500);
    const publishCpuUs =
      ((cpuSeconds(server.pid) - quietCpu) * 1e6 - (idleUs * (now() - quietStart)) / 1000) /
      settings.events;

    let idleWithSocketsUs = Number.NaN;
    let slow: Awaited<ReturnType<typeof slowConsumer>> | null = null;
    const results: FanOutResult[] = [];
    const during: Awaited<ReturnType<typeof gather>> = { published: [], receipts: {} };
    for (let round = 1; round <= settings.rounds; round += 1) {
      // The reads with events but no socket: what the events cost without their fan-out.
      if (settings.reads) await readsWithEvents(eventsOnly, 'no sockets');
      // 2. The sockets.
      const { rssBefore, rssOpen, opened } = await openSockets(`round ${round}`);
      let rssAfterEvents = Number.NaN;
      if (round === 1) {
        // 3. Fan-out: one post at a time.
        const warm = await publishSeries(settings.intervalMs, settings.warmupEvents);
        await fanOut('warm-up', warm);
        say(`${bus}: ${settings.events} events, ${settings.intervalMs} ms apart`);
        idleWithSocketsUs = await idleCpu();
        const fanCpu = cpuSeconds(server.pid);
        const clientsCpu = cpuSeconds(clients.child.pid!);
        const fanStart = now();
        profileWindow.start = monotonicUs();
        const quiet = await publishSeries(settings.intervalMs, settings.events);
        await awaitReceipts(quiet.map((p) => p.post));
        profileWindow.end = monotonicUs();
        await sleep(500);
        // What the sockets' fan-out cost: the span's CPU but for the server's at rest (with
        // the sockets open) and for the publishes' own (without sockets).
        const fanCpuUs =
          (cpuSeconds(server.pid) - fanCpu) * 1e6 -
          (idleWithSocketsUs * (now() - fanStart)) / 1000 -
          publishCpuUs * settings.events;
        const clientsCpuUs = (cpuSeconds(clients.child.pid!) - clientsCpu) * 1e6;
        const summary = await fanOut('one at a time', quiet, fanCpuUs);
        summary.clientCpuUsPerFrame = summary.received > 0 ? clientsCpuUs / summary.received : null;
        results.push(summary);
        rssAfterEvents = await restingRss();
        if (bigPost !== null) {
          slow = await slowConsumer({
            base: server.base,
            wsUrl,
            authorization,
            bigPost,
            metricsToken,
            clients,
            publishSeries,
            gather,
            sockets: settings.sockets,
            rss: () => rssBytes(server.pid),
            intervalMs: settings.intervalMs,
            events: settings.events,
            say: (message) => say(`${bus}: ${message}`),
          });
          results.push(
            slow.reading,
            slow.stalled,
            ...(slow.stalledBeforeDrop ? [slow.stalledBeforeDrop] : []),
          );
        }
      }
      // 4. The reads with the sockets open and events flowing.
      if (settings.reads) {
        const roundSeries = await readsWithEvents(withSockets, `${settings.sockets} sockets`);
        // Gathered before the sockets close (closing forgets their receipts).
        const gathered = await gather(roundSeries);
        during.published.push(...gathered.published);
        Object.assign(during.receipts, gathered.receipts);
      }
      // 5. The sockets closed; the reads again (the next round's "before").
      await clients.ask({ command: 'close' });
      const rssClosed = await restingRss();
      memory.push({
        round,
        sockets: opened.sockets,
        subscriptions: opened.subscriptions,
        openMs: opened.ms,
        rssBefore,
        rssOpen,
        rssAfterEvents,
        rssClosed,
      });
      await readsWithout();
    }
    if (during.published.length > 0) {
      results.push(
        summarizeFanOut(
          'during the reads',
          settings.sockets,
          during.published,
          during.receipts,
          null,
        ),
      );
    }
    const reads: ReadResult[] = readJobs()
      .map(({ operation }) => operation)
      .filter((operation) => withSockets.has(operation))
      .map((operation) => ({
        operation,
        without: without.get(operation)!,
        eventsOnly: eventsOnly.get(operation)!.map((w) => w.run),
        with: withSockets.get(operation)!.map((w) => w.run),
        eventsPerSecond: median(withSockets.get(operation)!.map((w) => w.eventsPerSecond)),
      }));
    const closedEarly = (await clients.ask({ command: 'collect', posts: [] })).closedEarly ?? {};
    return {
      bus,
      memory,
      fanOut: results,
      reads,
      publishCpuUs,
      idleCpuUsPerSecond: { without: idleUs, with: idleWithSocketsUs },
      closedEarly,
      slowConsumer: slow,
    };
  } finally {
    loader.stop();
    clients.stop();
    await stopServer(server);
    if (bus === 'redis') await deleteRedisKeys(redisUrl, prefix);
  }
}

async function main(): Promise<number> {
  mkdirSync(resultsDir, { recursive: true });
  const load = () => readFileSync('/proc/loadavg', 'utf8').trim();
  say(
    `${quick ? 'quick' : 'full'} run: ${settings.sockets} sockets, ${settings.events} events ${settings.intervalMs} ms apart, reads ${settings.reads ? `${settings.seconds} s × ${settings.connections} connections, ${settings.rate} events/s meanwhile` : 'skipped'}; buses ${buses.join(', ')}; ${availableParallelism()} cores; load ${load()}`,
  );
  if (!options['no-build']) {
    say('npm run build');
    await run('npm', ['run', 'build', '--silent'], {});
  }
  const secret = randomBytes(32).toString('hex');
  const results: BusResult[] = [];
  const loadBefore = load();
  const database = await makeRunDatabase(serverUrl, 'bench_live', settings, secret, say);
  const databaseUrl = database.url;
  try {
    const inputs = await readInputs(databaseUrl, 0);
    const [token] = accessTokens(secret, await makeSessions(databaseUrl, inputs.userIds, 1));
    for (const bus of buses)
      results.push(
        await runBus(bus as 'postgres', databaseUrl, secret, inputs.postIds, `Bearer ${token}`),
      );
  } finally {
    await database.drop();
  }

  const loadAfter = load();
  const header = `npm run bench:live${quick ? ' --quick' : ''}: ${new Date().toISOString()}, Node ${process.version}, ${availableParallelism()} cores; load (/proc/loadavg) ${loadBefore} before, ${loadAfter} after. ${settings.sockets} sockets on \`posts\`, every ${settings.everyNth}th also on a \`posts/{id}\`; ${settings.events} posts published ${settings.intervalMs} ms apart; reads ${settings.reads ? `${settings.seconds} s at ${settings.connections} connections (${settings.rounds} round(s)), with ${settings.rate} posts published a second meanwhile` : 'skipped'}.`;
  const markdown = [
    header,
    '',
    '### Fan-out: from the commit to each socket',
    '',
    fanOutTable(results),
    '',
    '### Memory',
    '',
    memoryTable(results),
    ...(settings.slowConsumer
      ? [
          '',
          '### A slow consumer',
          '',
          slowConsumerTable(results),
          '',
          'One more subscriber, on `posts/{id}` of a ~95 KB post edited every 50 ms, stops reading (it pauses its socket); the timed sockets are published to as in the one-at-a-time phase. The same run with that subscriber reading is the reference: both have the same edits and publishes. The rows "beside a reading / a stalled subscriber" of the fan-out table are these runs.',
        ]
      : []),
    ...(settings.reads
      ? ['', '### Reads without and with the sockets', '', readsTable(results)]
      : []),
    '',
    `The server's CPU per publish without sockets (its at-rest CPU aside): ${results.map((r) => `${r.bus} ${(r.publishCpuUs / 1000).toFixed(2)} ms`).join(', ')}; at rest, ms a second without / with the sockets open: ${results.map((r) => `${r.bus} ${(r.idleCpuUsPerSecond.without / 1000).toFixed(1)} / ${(r.idleCpuUsPerSecond.with / 1000).toFixed(1)}`).join(', ')}.`,
    ...(cpuProf
      ? [
          '',
          '### CPU profile of the API (self time)',
          '',
          profileSummary(
            profileDir,
            [profileWindow],
            `the ${((profileWindow.end - profileWindow.start) / 1e6).toFixed(1)} s of the one-at-a-time events`,
          ),
        ]
      : []),
  ].join('\n');
  console.log(`\n${markdown}`);
  writeResults(
    resultsDir,
    { kind: 'live', startedAt: started, quick },
    { settings, loadBefore, loadAfter, results },
    markdown,
  );
  const missed = results.some(
    (r) =>
      r.fanOut.some((f) => f.received !== f.expected) ||
      Object.keys(r.closedEarly).length > 0 ||
      r.reads.some((read) =>
        [...read.without, ...read.eventsOnly, ...read.with].some(
          (run) => run.non2xx + run.errors > 0,
        ),
      ),
  );
  if (missed)
    console.error('\na socket missed an event or was closed, or a read failed: see above');
  return missed ? 1 : 0;
}

runBench(main, () => say('done'));
