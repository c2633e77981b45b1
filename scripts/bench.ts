/**
 * npm run bench: throughput of the main reads and writes, on a real port, against the
 * database named by DATABASE_URL (a fresh schema is not created: use a scratch database)
 * or an in-memory embedded one. Figures are printed as ratios to GET /health measured in
 * the same run, because this machine's absolute speed varies from run to run.
 *
 * Then the login flood: what bcrypt allows (logins/s at saturation), and getMe's latency
 * at a fixed rate without logins and while logins arrive at half that capacity, in
 * interleaved rounds, with the server in a process of its own (`npm start`'s way), so
 * that the load generator does not share its event loop.
 *
 *   npm run bench                      # embedded PGlite in memory
 *   DATABASE_URL=postgres://… npm run bench
 *   npm run bench -- --quick           # a short run (CI smoke test)
 *   npm run bench -- --flood-only      # the login flood alone
 *
 * BCRYPT_COST (default 10 here) and BCRYPT_THREADS apply to both parts; BENCH_SECONDS,
 * BENCH_CONCURRENCY, BENCH_ROUNDS, BENCH_ROUND_SECONDS and BENCH_ME_RATE tune them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import bcrypt from 'bcryptjs';
import { buildApp } from '../src/app.js';
import { loadConfig, readEnvironment } from '../src/config.js';
import { createDatabase } from '../src/db/client.js';
import { createUsersRepository } from '../src/modules/users/repository.js';
import { projectRoot } from '../src/paths.js';

const quick = process.argv.includes('--quick');
const floodOnly = process.argv.includes('--flood-only');
const env = readEnvironment();
const numberFrom = (name: string, fallback: number) => Number(env[name] ?? fallback);

const JWT_SECRET = env.JWT_SECRET ?? 'bench-secret-bench-secret-bench-secret';
const BCRYPT_COST = env.BCRYPT_COST ?? '10';
// The bench signs up and logs in far faster than the limits meant for people allow.
const RATE_LIMIT_AUTH_MAX = '1000000000';

const config = loadConfig({
  ...env,
  NODE_ENV: 'production',
  LOG_LEVEL: 'silent',
  JWT_SECRET,
  DATA_DIR: env.DATABASE_URL ? (env.DATA_DIR ?? './.data') : 'memory://',
  BCRYPT_COST,
  RATE_LIMIT_AUTH_MAX,
});
const seconds = numberFrom('BENCH_SECONDS', quick ? 1 : 3);
const concurrency = numberFrom('BENCH_CONCURRENCY', 16);
const userCount = quick ? 200 : 2000;
const PASSWORD = 'bench password 1234';
const run = Date.now().toString(36);
const json = { 'content-type': 'application/json' };

// ---------------------------------------------------------------------------------------
// Part 1: throughput, in this process.

async function throughput(): Promise<void> {
  const database = await createDatabase(config);
  await database.migrate();
  const app = await buildApp(config, { database });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

  /** The users, straight into the database with one hash: signing up 2000 would take minutes. */
  async function seed(): Promise<string[]> {
    const users = createUsersRepository(database.db);
    const passwordHash = await bcrypt.hash(PASSWORD, config.bcryptCost);
    const ids: string[] = [];
    for (let i = 0; i < userCount; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, userCount - i) }, async (_, j) => {
          const created = await users.create({
            email: `bench-${run}-${i + j}@example.com`,
            username: `b${run}${i + j}`,
            passwordHash,
          });
          if (!created.ok) throw created.error;
          return created.value.id;
        }),
      );
      ids.push(...batch);
    }
    return ids;
  }

  async function measure(name: string, request: (i: number, worker: number) => Promise<Response>) {
    let done = 0;
    let failed = 0;
    const end = Date.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, worker) => {
        while (Date.now() < end) {
          const response = await request(done, worker);
          await response.arrayBuffer();
          if (!response.ok) failed += 1;
          done += 1;
        }
      }),
    );
    return { name, perSecond: done / seconds, failed };
  }

  console.log(`seeding ${userCount} users (${database.kind})…`);
  const ids = await seed();
  const deepCursor = await (async () => {
    let cursor: string | null = null;
    for (let page = 0; page < 90 && page * 20 < userCount - 20; page += 1) {
      const response = await fetch(
        `${base}/api/users?limit=20${cursor ? `&cursor=${cursor}` : ''}`,
      );
      cursor = ((await response.json()) as { nextCursor: string | null }).nextCursor;
    }
    return cursor;
  })();
  const deepPage = Math.min(90, Math.floor(userCount / 20) - 1) + 1;
  const login = await fetch(`${base}/api/auth/login`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ email: `bench-${run}-0@example.com`, password: PASSWORD }),
  }).then((r) => r.json() as Promise<{ accessToken: string }>);

  const results = [
    await measure('GET /health (reference)', () => fetch(`${base}/health`)),
    await measure('GET /api/users/{id}', (i) => fetch(`${base}/api/users/${ids[i % ids.length]}`)),
    await measure('GET /api/users?limit=20 (first page)', () =>
      fetch(`${base}/api/users?limit=20`),
    ),
    await measure(`GET /api/users?limit=20 (page ${deepPage})`, () =>
      fetch(`${base}/api/users?limit=20&cursor=${deepCursor}`),
    ),
    await measure('GET /api/auth/me', () =>
      fetch(`${base}/api/auth/me`, { headers: { authorization: `Bearer ${login.accessToken}` } }),
    ),
    // One account per worker: more than LOGIN_MAX_FAILURES logins in flight for one address
    // are refused (they are counted before their password is checked).
    await measure(`POST /api/auth/login (bcrypt cost ${config.bcryptCost})`, (_, worker) =>
      fetch(`${base}/api/auth/login`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({
          email: `bench-${run}-${1 + worker}@example.com`,
          password: PASSWORD,
        }),
      }),
    ),
  ];

  const reference = results[0]!.perSecond;
  console.log(`\n${seconds} s each, ${concurrency} concurrent requests, ${database.kind}\n`);
  for (const r of results) {
    console.log(
      `${r.name.padEnd(44)} ${r.perSecond.toFixed(0).padStart(7)} req/s  ${(r.perSecond / reference).toFixed(3)} × reference${r.failed ? `  (${r.failed} failed)` : ''}`,
    );
  }
  const first = results[2]!.perSecond;
  const deep = results[3]!.perSecond;
  console.log(
    `\npage ${deepPage} / first page throughput: ${(deep / first).toFixed(2)} (1.00 = deep pages cost the same)`,
  );

  await app.close();
  await database.close();
}

if (!floodOnly) await throughput();

// ---------------------------------------------------------------------------------------
// Part 2: the login flood, against a server in its own process.

const rounds = numberFrom('BENCH_ROUNDS', quick ? 1 : 5);
const roundSeconds = numberFrom('BENCH_ROUND_SECONDS', quick ? 3 : 8);
const capacitySeconds = quick ? 2 : 5;
const meRate = numberFrom('BENCH_ME_RATE', 100);
const loginAccounts = 20;

async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, 'close');
  return port;
}

/** `npm start` (the sources transpiled once, no loader in the process), production-like. */
async function startServer(): Promise<{ base: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--max-semi-space-size=16', 'scripts/start.js'], {
    cwd: projectRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: {
      ...process.env,
      ...(env.DATABASE_URL ? { DATABASE_URL: env.DATABASE_URL } : { DATA_DIR: 'memory://' }),
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      PORT: String(port),
      JWT_SECRET,
      BCRYPT_COST,
      RATE_LIMIT_AUTH_MAX,
    },
  });
  const serverBase = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode})`);
    const ready = await fetch(`${serverBase}/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) return { base: serverBase, child };
    if (Date.now() > deadline) throw new Error('the server did not start within 60 s');
    await sleep(200);
  }
}

interface Sample {
  latencyMs: number;
  ok: boolean;
}

/** The q-quantile of sorted values (nearest rank): exact, for a few thousand samples. */
function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/**
 * Sends `rate` requests a second for `durationMs`, each at its due time whether or not
 * the earlier ones have been answered (an open loop: a slow server gets more requests in
 * flight, not fewer), and times each from its due time, so that a late send counts too.
 */
async function openLoop(
  rate: number,
  durationMs: number,
  send: (i: number) => Promise<Response>,
): Promise<Sample[]> {
  const samples: Sample[] = [];
  const pending: Promise<void>[] = [];
  const start = performance.now();
  const total = Math.floor((rate * durationMs) / 1000);
  for (let i = 0; i < total; i += 1) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(
      send(i).then(
        async (response) => {
          await response.arrayBuffer();
          samples.push({ latencyMs: performance.now() - due, ok: response.ok });
        },
        () => {
          samples.push({ latencyMs: performance.now() - due, ok: false });
        },
      ),
    );
  }
  await Promise.all(pending);
  return samples;
}

function summary(samples: Sample[]) {
  const sorted = samples.map((s) => s.latencyMs).sort((a, b) => a - b);
  return {
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    count: samples.length,
    failed: samples.filter((s) => !s.ok).length,
  };
}

const server = await startServer();
const stopServer = () => server.child.exitCode === null && server.child.kill('SIGTERM');
process.once('exit', stopServer);
try {
  const flood = server.base;
  const signUp = async (i: number) => {
    const email = `flood-${run}-${i}@example.com`;
    const created = await fetch(`${flood}/api/users`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email, username: `f${run}${i}`, password: PASSWORD }),
    });
    if (created.status !== 201)
      throw new Error(`sign-up: ${created.status} ${await created.text()}`);
    return email;
  };
  const emails = await Promise.all(Array.from({ length: loginAccounts }, (_, i) => signUp(i)));
  const loginAs = (i: number) =>
    fetch(`${flood}/api/auth/login`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email: emails[i % emails.length], password: PASSWORD }),
    });
  const { accessToken } = (await (await loginAs(0)).json()) as { accessToken: string };
  const getMe = () =>
    fetch(`${flood}/api/auth/me`, { headers: { authorization: `Bearer ${accessToken}` } });

  // Warm up: the bcrypt threads start with the first logins, and the JIT with the first requests.
  await Promise.all(Array.from({ length: config.bcryptThreads * 2 }, (_, i) => loginAs(i)));
  await openLoop(meRate, 1000, getMe);

  // What bcrypt allows: logins kept waiting for a thread, after a second of the same to
  // warm the threads' JIT up. Measured here, a login answered alone takes about three
  // times its hash (one thread, cost 10: 125 ms against 43 ms a login at saturation), so
  // a few logins in flight per thread do not saturate it; 16 do.
  const inFlight = Math.max(16, config.bcryptThreads * 4);
  const saturate = async (durationSeconds: number) => {
    let logins = 0;
    let failed = 0;
    const start = performance.now();
    const end = start + durationSeconds * 1000;
    await Promise.all(
      Array.from({ length: inFlight }, async (_, worker) => {
        for (let i = worker; performance.now() < end; i += inFlight) {
          const response = await loginAs(i);
          await response.arrayBuffer();
          if (!response.ok) failed += 1;
          logins += 1;
        }
      }),
    );
    return { perSecond: logins / ((performance.now() - start) / 1000), failed };
  };
  await saturate(1);
  const { perSecond: capacity, failed: loginFailures } = await saturate(capacitySeconds);
  const loginRate = capacity / 2;

  const cores = availableParallelism();
  console.log(
    `\nlogin flood: server in its own process (NODE_ENV=production, LOG_LEVEL=warn), bcrypt cost ${config.bcryptCost}, ${config.bcryptThreads} bcrypt thread(s), ${cores} cores, ${env.DATABASE_URL ? 'postgres' : 'embedded database in memory'}`,
  );
  console.log(
    `bcrypt capacity: ${capacity.toFixed(1)} logins/s (${capacitySeconds} s, ${inFlight} in flight, ${loginFailures} non-2xx)`,
  );
  console.log(
    `getMe at ${meRate} req/s for ${roundSeconds} s per run; logins at ${loginRate.toFixed(1)}/s (half the capacity), both open loop; latency from each request's due time\n`,
  );
  console.log(
    'round   getMe without logins      getMe with logins         p99 ratio   logins sent  non-2xx (getMe / logins)',
  );
  const ms = (value: number) => `${value.toFixed(1)}`.padStart(6);
  const ratios: number[] = [];
  const p50Ratios: number[] = [];
  for (let round = 1; round <= rounds; round += 1) {
    const alone = summary(await openLoop(meRate, roundSeconds * 1000, getMe));
    await sleep(500);
    const [withLogins, loginSamples] = await Promise.all([
      openLoop(meRate, roundSeconds * 1000, getMe).then(summary),
      openLoop(loginRate, roundSeconds * 1000, loginAs).then(summary),
    ]);
    await sleep(500);
    const ratio = withLogins.p99 / alone.p99;
    ratios.push(ratio);
    p50Ratios.push(withLogins.p50 / alone.p50);
    console.log(
      `${String(round).padEnd(8)}p50 ${ms(alone.p50)} p99 ${ms(alone.p99)} ms  p50 ${ms(withLogins.p50)} p99 ${ms(withLogins.p99)} ms  ${ratio.toFixed(2).padStart(6)}×  ${String(loginSamples.count).padStart(11)}  ${alone.failed + withLogins.failed} / ${loginSamples.failed}`,
    );
  }
  const median = (values: number[]) =>
    [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const p99Ratio = median(ratios);
  console.log(
    `\nmedian getMe p99 with / without logins: ${p99Ratio.toFixed(2)}× (target ≤ 1.5×: ${p99Ratio <= 1.5 ? 'met' : 'NOT met'}); p50: ${median(p50Ratios).toFixed(2)}×`,
  );
} finally {
  stopServer();
  if (server.child.exitCode === null) await once(server.child, 'exit');
}
