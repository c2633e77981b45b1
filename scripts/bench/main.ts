/**
 * npm run bench: the compiled API against a hand-written reference server (reference/), on
 * the same PostgreSQL database and the same requests, in interleaved rounds. See
 * docs/performance.md for what each figure means.
 *
 *   npm run bench                  # the full run: 10,000 users, 200,000 posts, 3 rounds, soak
 *   npm run bench -- --quick       # one short round on a smaller seed (CI smoke test)
 *   npm run bench -- --no-build    # use dist/ as it is (CI builds it just before)
 *   npm run bench -- --rounds 5 --seconds 8 --connections 32
 *   npm run bench -- --only getPost,getUser
 *
 * BENCH_DATABASE_URL: the database (default postgres://postgres@127.0.0.1:5432/bench, or
 * …/bench_quick with --quick); created if missing, seeded once and reused after.
 * BENCH_BCRYPT_COST: both servers' bcrypt cost (default 12, the API's production default).
 *
 * The exit code is 1 when the harness breaks, when the two servers answer a request
 * differently, or when any measured request is not answered 2xx; never for a missed target.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { checkSameResponses, type CheckCase } from './compare.js';
import {
  accessTokens,
  cleanUp,
  ensureDatabase,
  makeSessions,
  readInputs,
  run,
  seedIfNeeded,
  type Inputs,
} from './fixtures.js';
import type { LoadJob, LoadMessage, LoadReply, LoadResult } from './load.js';
import {
  markdownTable,
  median,
  summarize,
  targetsTable,
  type OperationResult,
  type Run,
  type Target,
} from './report.js';
import {
  cpuSeconds,
  rssBytes,
  sampleRss,
  startServer,
  stopServer,
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
    only: { type: 'string' },
  },
});
const quick = options.quick;
const settings = {
  users: quick ? 1_000 : 10_000,
  posts: quick ? 20_000 : 200_000,
  rounds: Number(options.rounds ?? (quick ? 1 : 3)),
  seconds: Number(options.seconds ?? (quick ? 1 : 5)),
  // A smoke test needs no warm-up: its figures are not for comparing.
  warmupSeconds: quick ? 0 : 3,
  connections: Number(options.connections ?? (quick ? 8 : 32)),
  soakSeconds: quick ? 0 : 60,
  // The production default; a smoke test needs no costly hashes (its seed and logins are quicker).
  bcryptCost: Number(process.env.BENCH_BCRYPT_COST ?? (quick ? 6 : 12)),
  bcryptThreads: Math.max(1, availableParallelism() - 1),
};
const databaseUrl =
  process.env.BENCH_DATABASE_URL ??
  `postgres://postgres@127.0.0.1:5432/${quick ? 'bench_quick' : 'bench'}`;
const resultsDir = join(root, 'bench-results');
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;
const say = (message: string) => console.log(`[${elapsed()}] ${message}`);

// ---------------------------------------------------------------------------------------
// The load generator, in its own process.

let loader: ChildProcess | undefined;
let nextMessage = 0;
const waiting = new Map<
  number,
  { resolve: (r: LoadResult[]) => void; reject: (e: Error) => void }
>();

function startLoader(): void {
  loader = fork(join(root, 'scripts/bench/load.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  loader.on('message', (reply: LoadReply) => {
    const entry = waiting.get(reply.id);
    waiting.delete(reply.id);
    if (reply.results) entry?.resolve(reply.results);
    else entry?.reject(new Error(`load generator: ${reply.error}`));
  });
  loader.once('exit', (code) => {
    for (const entry of waiting.values()) entry.reject(new Error(`load generator exited ${code}`));
    waiting.clear();
  });
}

function load(jobs: LoadJob[]): Promise<LoadResult[]> {
  const id = nextMessage++;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    loader!.send({ id, jobs } satisfies LoadMessage);
  });
}

// ---------------------------------------------------------------------------------------
// The operations.

// Logins keep every bcrypt thread busy with one more waiting; more would only queue, and the
// queued ones still running when a run ends would be CPU time without a counted request.
const loginConnections = settings.bcryptThreads + 1;
// A login takes a large fraction of a second: runs long enough to count a few dozen.
const loginSeconds = (seconds: number) => Math.max(seconds, quick ? 2 : 10);
const searchWord = 'coffee';

interface Operation {
  name: string;
  targeted: boolean;
  connections: number;
  login?: boolean;
  /** The job's request inputs for one run on `server` (a refresh token pool is made fresh). */
  job: (
    server: Server,
  ) => Promise<Omit<LoadJob, 'url' | 'seconds' | 'connections'> & { path?: string }>;
}

function operations(inputs: Inputs, secret: string, refreshPeak: Map<string, number>): Operation[] {
  const get = (paths: string[]) => async () => ({ method: 'GET' as const, paths });
  const c = settings.connections;
  let meTokens: string[] | undefined;
  return [
    {
      name: 'getPost',
      targeted: true,
      connections: c,
      job: get(inputs.postIds.map((id) => `/api/posts/${id}`)),
    },
    {
      name: 'getPostBySlug',
      targeted: true,
      connections: c,
      job: get(inputs.slugs.map((slug) => `/api/posts/by-slug/${slug}`)),
    },
    { name: 'listPosts', targeted: true, connections: c, job: get(['/api/posts?limit=20']) },
    {
      name: `listPosts deep (row ${inputs.deepOffset.toLocaleString('en')})`,
      targeted: true,
      connections: c,
      job: get([`/api/posts?limit=20&cursor=${inputs.deepCursor}`]),
    },
    {
      name: `listPosts q=${searchWord}`,
      targeted: true,
      connections: c,
      job: get([`/api/posts?limit=20&q=${searchWord}`]),
    },
    {
      name: 'recordPostView',
      targeted: true,
      connections: c,
      job: async () => ({
        method: 'POST',
        paths: inputs.postIds.map((id) => `/api/posts/${id}/views`),
      }),
    },
    {
      name: 'getUser',
      targeted: true,
      connections: c,
      job: get(inputs.userIds.slice(0, 500).map((id) => `/api/users/${id}`)),
    },
    { name: 'listUsers', targeted: true, connections: c, job: get(['/api/users?limit=20']) },
    {
      name: 'getMe',
      targeted: true,
      connections: c,
      job: async () => {
        meTokens ??= accessTokens(secret, await makeSessions(databaseUrl, inputs.userIds, 200));
        return {
          method: 'GET',
          path: '/api/auth/me',
          authorizations: meTokens.map((t) => `Bearer ${t}`),
        };
      },
    },
    {
      name: 'refreshToken',
      targeted: false,
      connections: c,
      job: async (server) => {
        // Every request needs a token never used: a pool larger than the run can take.
        const peak = refreshPeak.get(server.name) ?? (quick ? 1500 : 3000) / settings.seconds;
        const count = Math.ceil(peak * settings.seconds * 2) + 500;
        const { refreshTokens } = await makeSessions(databaseUrl, inputs.userIds, count);
        return {
          method: 'POST',
          path: '/api/auth/refresh',
          bodies: refreshTokens.map((refreshToken) => JSON.stringify({ refreshToken })),
        };
      },
    },
    {
      name: `login (bcrypt cost ${settings.bcryptCost})`,
      targeted: false,
      login: true,
      connections: loginConnections,
      job: async () => ({
        method: 'POST',
        path: '/api/auth/login',
        bodies: loginBodies(inputs),
      }),
    },
  ];
}

const loginBodies = (inputs: Inputs) =>
  inputs.emails.map((email) => JSON.stringify({ email, password: 'correct horse battery staple' }));

// ---------------------------------------------------------------------------------------
// One measured run: the server's CPU time and RSS from /proc around a load job.

async function measure(
  server: Server,
  operation: Operation,
  round: number,
  seconds: number,
  refreshPeak: Map<string, number>,
): Promise<Run> {
  const [run] = await measureTogether([server], operation, round, seconds, refreshPeak);
  return run!;
}

/**
 * Runs `operation` on every server at once (one load job each, `rate` requests a second
 * each when given) and measures each over the same seconds: a difference between them is
 * not the machine's speed drifting from one run to the next.
 */
async function measureTogether(
  servers: Server[],
  operation: Operation,
  round: number,
  seconds: number,
  refreshPeak: Map<string, number>,
  rate?: number,
): Promise<Run[]> {
  const jobs = await Promise.all(servers.map((server) => operation.job(server)));
  const duration = operation.login ? loginSeconds(seconds) : seconds;
  const sampler = setInterval(() => servers.forEach(sampleRss), 250);
  const before = servers.map((server) => cpuSeconds(server.pid));
  let results: LoadResult[];
  try {
    results = await load(
      jobs.map((job, i) => ({
        ...job,
        url: `${servers[i]!.base}${job.path ?? ''}`,
        seconds: duration,
        connections: operation.connections,
        ...(rate === undefined ? {} : { rate }),
      })),
    );
  } finally {
    clearInterval(sampler);
  }
  return servers.map((server, i) => {
    const result = results[i]!;
    const cpu = cpuSeconds(server.pid) - before[i]!;
    const rss = sampleRss(server);
    if (operation.name === 'refreshToken') {
      refreshPeak.set(server.name, Math.max(refreshPeak.get(server.name) ?? 0, result.perSecond));
    }
    return {
      round,
      requests: result.requests,
      perSecond: result.perSecond,
      p50Ms: result.p50Ms,
      p99Ms: result.p99Ms,
      cpuUsPerRequest: result.requests > 0 ? (cpu * 1e6) / result.requests : Number.NaN,
      rssBytes: rss,
      non2xx: result.non2xx,
      errors: result.errors + result.timeouts,
      statuses: result.statuses,
    };
  });
}

// ---------------------------------------------------------------------------------------

async function main(): Promise<number> {
  mkdirSync(resultsDir, { recursive: true });
  say(
    `${quick ? 'quick' : 'full'} run: ${settings.rounds} round(s) of ${settings.seconds} s per operation and server, ${settings.connections} connections, bcrypt cost ${settings.bcryptCost} on ${settings.bcryptThreads} thread(s), ${availableParallelism()} cores`,
  );
  if (!options['no-build']) {
    say('npm run build');
    await run('npm', ['run', 'build', '--silent'], {});
  }
  const referenceDir = join(resultsDir, '.reference');
  await build({
    entryPoints: [
      join(root, 'scripts/bench/reference/server.ts'),
      join(root, 'scripts/bench/reference/hash-worker.ts'),
    ],
    outdir: referenceDir,
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });

  say(`database ${databaseUrl.replace(/\/\/[^@]*@/, '//')}`);
  await ensureDatabase(databaseUrl);
  const secret = randomBytes(32).toString('hex');
  // With DATABASE_URL the configuration requires JWT_SECRET, the migrator's too.
  await run(process.execPath, [join(root, 'dist/db/migrate.js')], {
    DATABASE_URL: databaseUrl,
    JWT_SECRET: secret,
  });
  await seedIfNeeded(databaseUrl, settings, settings.bcryptCost);
  const inputs = await readInputs(databaseUrl, quick ? Math.floor(settings.posts * 0.45) : 100_000);
  say(
    `${inputs.publishedCount.toLocaleString('en')} published posts; the deep page starts after row ${inputs.deepOffset.toLocaleString('en')}`,
  );

  const common = {
    PATH: process.env.PATH,
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    JWT_SECRET: secret,
    // Required in production; the bench sends no email.
    PUBLIC_URL: 'http://127.0.0.1',
    BCRYPT_COST: String(settings.bcryptCost),
    BCRYPT_THREADS: String(settings.bcryptThreads),
  };
  // The bench logs in and refreshes far faster than the limits meant for people allow; the
  // per-client limit on all operations stays on, as in the reference, only out of reach.
  const unlimited = {
    RATE_LIMIT_MAX: '1000000000',
    RATE_LIMIT_LOGIN_MAX: '1000000000',
    RATE_LIMIT_REFRESH_TOKEN_MAX: '1000000000',
  };
  const logTo = (name: string) => join(resultsDir, `${name}.log`);
  const servers: Server[] = [];
  const refreshPeak = new Map<string, number>();
  startLoader();
  try {
    // Started together; whichever did start is stopped at the end, even if another failed.
    const starting = await Promise.allSettled([
      startServer({
        name: 'API',
        args: [join(root, 'dist/server.js')],
        env: { ...common, ...unlimited, LOG_LEVEL: 'warn' },
        readyPath: '/ready',
        logFile: logTo('api'),
      }),
      startServer({
        name: 'reference',
        args: [join(referenceDir, 'server.js')],
        env: { ...common, RATE_LIMIT_MAX: '1000000000', LOG_LEVEL: 'warn' },
        readyPath: '/health',
        logFile: logTo('reference'),
      }),
      // The API at the production default level: its logs go nowhere, as fast as they can.
      startServer({
        name: 'API (LOG_LEVEL=info)',
        args: [join(root, 'dist/server.js')],
        env: { ...common, ...unlimited, LOG_LEVEL: 'info' },
        readyPath: '/ready',
        logFile: null,
      }),
    ]);
    for (const outcome of starting) if (outcome.status === 'fulfilled') servers.push(outcome.value);
    const failed = starting.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    const [project, reference, projectInfo] = servers as [Server, Server, Server];

    const all = operations(inputs, secret, refreshPeak);
    const only = options.only?.split(',');
    const ops = only ? all.filter((op) => only.some((name) => op.name.startsWith(name))) : all;

    say('checking that both servers answer the same');
    const [checkSessions] = [await makeSessions(databaseUrl, inputs.userIds, 2)];
    const [meToken] = accessTokens(secret, await makeSessions(databaseUrl, inputs.userIds, 1));
    const cases: CheckCase[] = [
      { name: 'getPost', method: 'GET', path: `/api/posts/${inputs.postIds[0]}` },
      { name: 'getPostBySlug', method: 'GET', path: `/api/posts/by-slug/${inputs.slugs[0]}` },
      { name: 'listPosts', method: 'GET', path: '/api/posts?limit=20' },
      {
        name: 'listPosts deep',
        method: 'GET',
        path: `/api/posts?limit=20&cursor=${inputs.deepCursor}`,
      },
      { name: 'listPosts q', method: 'GET', path: `/api/posts?limit=20&q=${searchWord}` },
      { name: 'recordPostView', method: 'POST', path: `/api/posts/${inputs.postIds[1]}/views` },
      { name: 'getUser', method: 'GET', path: `/api/users/${inputs.userIds[0]}` },
      { name: 'listUsers', method: 'GET', path: '/api/users?limit=20' },
      { name: 'getMe', method: 'GET', path: '/api/auth/me', authorization: `Bearer ${meToken}` },
      {
        name: 'refreshToken',
        method: 'POST',
        path: '/api/auth/refresh',
        bodies: checkSessions.refreshTokens.map((refreshToken) => JSON.stringify({ refreshToken })),
      },
      { name: 'login', method: 'POST', path: '/api/auth/login', body: loginBodies(inputs)[0] },
    ];
    const mismatches = await checkSameResponses(project.base, reference.base, cases);
    if (mismatches.length > 0) {
      for (const m of mismatches) console.error(`MISMATCH ${m}`);
      throw new Error('the API and the reference answer differently (above): fix the reference');
    }
    say(`same answers for ${cases.length} operations`);

    // Warm-up: the JIT, the pools, the prepared statements and the bcrypt threads.
    const loggingOp = ops.find((op) => op.name === 'getUser') ?? ops[0]!;
    if (settings.warmupSeconds > 0) {
      say(`warm-up: ${settings.warmupSeconds} s per operation and server`);
      for (const op of ops) {
        for (const server of [project, reference]) {
          await measure(server, op, 0, settings.warmupSeconds, refreshPeak);
        }
      }
      await measure(projectInfo, loggingOp, 0, settings.warmupSeconds, refreshPeak);
    }

    const results = new Map<string, OperationResult>(
      ops.map((op) => [
        op.name,
        { name: op.name, targeted: op.targeted, project: [], reference: [] },
      ]),
    );
    const logging: { warn: Run[]; info: Run[] } = { warn: [], info: [] };
    for (let round = 1; round <= settings.rounds; round += 1) {
      say(`round ${round} of ${settings.rounds}`);
      for (const [index, op] of ops.entries()) {
        const order = (round + index) % 2 === 0 ? [project, reference] : [reference, project];
        for (const server of order) {
          const measured = await measure(server, op, round, settings.seconds, refreshPeak);
          results.get(op.name)![server === project ? 'project' : 'reference'].push(measured);
          if (measured.non2xx + measured.errors > 0) {
            console.error(
              `  ${op.name} on ${server.name}: ${measured.non2xx} non-2xx, ${measured.errors} errors; statuses ${JSON.stringify(measured.statuses)}`,
            );
          }
        }
        if (op === loggingOp) {
          // The API at warn and at info under the same load at the same time, at a rate both
          // keep up with (a third of what the API at warn just answered, each): the
          // difference of their CPU per request is the logging. One after the other, the
          // machine's drift between two runs (tens of µs a request here) would swamp it.
          const rate = Math.max(
            50,
            Math.round(results.get(op.name)!.project.at(-1)!.perSecond / 3),
          );
          const [warn, info] = await measureTogether(
            [project, projectInfo],
            op,
            round,
            settings.seconds,
            refreshPeak,
            rate,
          );
          logging.warn.push(warn!);
          logging.info.push(info!);
        }
      }
    }

    // getPost's p99 at a fixed rate, alone and while logins arrive at half of what bcrypt
    // allows (the API's login rate measured above), in interleaved rounds.
    const loginResult = [...results.values()].find((r) => r.name.startsWith('login'));
    const getPostResult = results.get('getPost');
    const getPostOp = ops.find((op) => op.name === 'getPost');
    const loginOp = ops.find((op) => op.name.startsWith('login'));
    const underLogins: { alone: number; withLogins: number; loginNon2xx: number }[] = [];
    let loginRate = Number.NaN;
    let getPostRate = Number.NaN;
    if (loginResult && getPostResult && getPostOp && loginOp) {
      // At least one login in a run, should none have been answered within the runs above.
      loginRate = Math.max(
        1 / settings.seconds,
        median(loginResult.project.map((r) => r.perSecond)) / 2,
      );
      getPostRate = Math.max(
        50,
        Math.round(median(getPostResult.project.map((r) => r.perSecond)) * 0.25),
      );
      say(
        `getPost at ${getPostRate} req/s, alone and with logins at ${loginRate.toFixed(1)}/s (half the API's login rate)`,
      );
      const getPostJob = {
        ...(await getPostOp.job(project)),
        url: project.base,
        seconds: settings.seconds,
        connections: settings.connections,
        rate: getPostRate,
      };
      const loginJob = {
        ...(await loginOp.job(project)),
        url: `${project.base}/api/auth/login`,
        seconds: settings.seconds,
        // Enough that no login waits for a connection: they are sent at their due times.
        connections: 32,
        rate: loginRate,
        openLoop: true,
      };
      for (let round = 1; round <= settings.rounds; round += 1) {
        // Alone first in odd rounds, with logins first in even ones.
        const runAlone = () => load([getPostJob]) as Promise<[LoadResult]>;
        const runWith = () => load([getPostJob, loginJob]) as Promise<[LoadResult, LoadResult]>;
        let alone: LoadResult;
        let withLogins: LoadResult;
        let logins: LoadResult;
        if (round % 2 === 1) {
          [alone] = await runAlone();
          [withLogins, logins] = await runWith();
        } else {
          [withLogins, logins] = await runWith();
          [alone] = await runAlone();
        }
        sampleRss(project);
        underLogins.push({
          alone: alone.p99Ms,
          withLogins: withLogins.p99Ms,
          loginNon2xx:
            alone.non2xx +
            alone.errors +
            withLogins.non2xx +
            withLogins.errors +
            logins.non2xx +
            logins.errors,
        });
      }
    }

    // The soak: getPost for a minute; RSS after the first tenth (the warm-up) and at the end.
    let soak: { afterWarmup: number; end: number; non2xx: number } | null = null;
    if (settings.soakSeconds > 0 && getPostOp) {
      say(`soak: getPost for ${settings.soakSeconds} s`);
      const samples: number[] = [];
      const sampler = setInterval(() => samples.push(sampleRss(project)), 1000);
      const [result] = (await load([
        {
          ...(await getPostOp.job(project)),
          url: project.base,
          seconds: settings.soakSeconds,
          connections: settings.connections,
        },
      ])) as [LoadResult];
      clearInterval(sampler);
      const warmup = Math.max(1, Math.floor(samples.length / 10));
      soak = {
        afterWarmup: samples[warmup - 1] ?? Number.NaN,
        end: rssBytes(project.pid),
        non2xx: result.non2xx + result.errors,
      };
    }

    // -----------------------------------------------------------------------------------
    // The report.
    const summaries = [...results.values()].map(summarize);
    const targets: Target[] = [];
    const targeted = summaries.filter((s) => s.targeted);
    for (const s of targeted) {
      targets.push({
        name: `${s.name}: CPU/req ≤ 1.05× and req/s ≥ 0.95× the reference's`,
        figure: `CPU ${s.cpuUs[2].toFixed(2)}×, req/s ${s.perSecond[2].toFixed(2)}×`,
        pass: s.pass === true,
      });
    }
    const loggingCost = median(
      logging.info.map((info, i) => info.cpuUsPerRequest - logging.warn[i]!.cpuUsPerRequest),
    );
    if (logging.info.length > 0) {
      targets.push({
        name: `logging at the production default (info vs warn, ${loggingOp.name}) ≤ 10 µs/req`,
        figure: `${loggingCost.toFixed(1)} µs/req`,
        pass: loggingCost <= 10,
      });
    }
    const deep = [...results.values()].find((r) => r.name.startsWith('listPosts deep'));
    const first = results.get('listPosts');
    let deepRatio = Number.NaN;
    if (deep && first) {
      deepRatio = median(
        deep.project.map(
          (d) => d.p50Ms / (first.project.find((f) => f.round === d.round)?.p50Ms ?? NaN),
        ),
      );
      targets.push({
        name: 'listPosts deep p50 ≤ 1.2× first page p50 (API)',
        figure: `${deepRatio.toFixed(2)}×`,
        pass: deepRatio <= 1.2,
      });
    }
    const loginP99Ratio = median(underLogins.map((u) => u.withLogins / u.alone));
    if (underLogins.length > 0) {
      targets.push({
        name: 'getPost p99 with logins at half the bcrypt capacity ≤ 1.5× without',
        figure: `${loginP99Ratio.toFixed(2)}× (p99 ${median(underLogins.map((u) => u.withLogins)).toFixed(1)} vs ${median(underLogins.map((u) => u.alone)).toFixed(1)} ms at ${getPostRate} req/s; logins ${loginRate.toFixed(1)}/s)`,
        pass: loginP99Ratio <= 1.5,
      });
    }
    const peakMb = project.peakRss / 2 ** 20;
    targets.push({
      name: 'API RSS ≤ 200 MB through the run',
      figure: `peak ${peakMb.toFixed(0)} MB (reference ${(reference.peakRss / 2 ** 20).toFixed(0)} MB)`,
      pass: peakMb <= 200,
    });
    if (soak) {
      const growth = soak.end / soak.afterWarmup - 1;
      targets.push({
        name: `soak: getPost ${settings.soakSeconds} s, RSS growth after warm-up < 10%`,
        figure: `${(soak.afterWarmup / 2 ** 20).toFixed(0)} → ${(soak.end / 2 ** 20).toFixed(0)} MB (${(growth * 100).toFixed(1)}%)`,
        pass: growth < 0.1,
      });
    }

    const header = `npm run bench${quick ? ' --quick' : ''}: ${new Date().toISOString()}, ${settings.rounds} round(s) × ${settings.seconds} s, ${settings.connections} connections (login ${loginConnections}), ${inputs.publishedCount.toLocaleString('en')} published posts, Node ${process.version}, ${availableParallelism()} cores. Ratios are API / reference, medians of per-round ratios.`;
    const markdown = `${header}\n\n${markdownTable(summaries)}\n\n${targetsTable(targets)}\n`;
    console.log(`\n${markdown}`);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const json = {
      quick,
      settings,
      date: new Date().toISOString(),
      node: process.version,
      cores: availableParallelism(),
      publishedPosts: inputs.publishedCount,
      deepOffset: inputs.deepOffset,
      operations: [...results.values()],
      summaries,
      logging: { operation: loggingOp.name, ...logging, costUs: loggingCost },
      underLogins: { getPostRate, loginRate, rounds: underLogins, p99Ratio: loginP99Ratio },
      deepFirstP50Ratio: deepRatio,
      peakRssBytes: { api: project.peakRss, reference: reference.peakRss },
      soak,
      targets,
    };
    for (const name of [`bench-${stamp}`, quick ? 'latest-quick' : 'latest']) {
      writeFileSync(join(resultsDir, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
      writeFileSync(join(resultsDir, `${name}.md`), markdown);
    }
    say(`written to bench-results/bench-${stamp}.{json,md}`);

    const failures =
      summaries.filter((s) => s.failed).length +
      underLogins.filter((u) => u.loginNon2xx > 0).length +
      (soak && soak.non2xx > 0 ? 1 : 0);
    if (failures > 0) {
      console.error('\nsome requests were not answered 2xx (see above): the bench failed');
      return 1;
    }
    return 0;
  } finally {
    loader?.disconnect();
    await Promise.all(servers.map(stopServer));
    await cleanUp(databaseUrl).catch(() => undefined);
  }
}

main().then(
  (code) => {
    say('done');
    process.exit(code);
  },
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
