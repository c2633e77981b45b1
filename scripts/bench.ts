/**
 * npm run bench: throughput of the main reads and writes, on a real port, against the
 * database named by DATABASE_URL (a fresh schema is not created: use a scratch database)
 * or an in-memory embedded one. Figures are printed as ratios to GET /health measured in
 * the same run, because this machine's absolute speed varies from run to run.
 *
 *   npm run bench                      # embedded PGlite in memory
 *   DATABASE_URL=postgres://… npm run bench
 */
import { buildApp } from '../src/app.js';
import { loadConfig, readEnvironment } from '../src/config.js';
import { createDatabase } from '../src/db/client.js';

const env = readEnvironment();
const config = loadConfig({
  ...env,
  NODE_ENV: 'production',
  LOG_LEVEL: 'silent',
  JWT_SECRET: env.JWT_SECRET ?? 'bench-secret-bench-secret-bench-secret',
  DATA_DIR: env.DATABASE_URL ? (env.DATA_DIR ?? './.data') : 'memory://',
  BCRYPT_COST: env.BCRYPT_COST ?? '10',
  // The bench signs up and logs in far faster than the limit meant for people allows.
  RATE_LIMIT_AUTH_MAX: '1000000000',
});
const seconds = Number(env.BENCH_SECONDS ?? 3);
const concurrency = Number(env.BENCH_CONCURRENCY ?? 16);
const userCount = 2000;

const database = await createDatabase(config);
await database.migrate();
const app = await buildApp(config, { database });
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

const run = Date.now().toString(36);
const json = { 'content-type': 'application/json' };
async function seed(): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < userCount; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, userCount - i) }, (_, j) =>
        fetch(`${base}/api/users`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify({
            email: `bench-${run}-${i + j}@example.com`,
            username: `b${run}${i + j}`,
            password: 'bench password 1234',
          }),
        }).then((r) => r.json() as Promise<{ id: string }>),
      ),
    );
    ids.push(...batch.map((u) => u.id));
  }
  return ids;
}

async function measure(name: string, request: (i: number) => Promise<Response>) {
  let done = 0;
  let failed = 0;
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const response = await request(done);
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
  for (let page = 0; page < 90; page += 1) {
    const response = await fetch(`${base}/api/users?limit=20${cursor ? `&cursor=${cursor}` : ''}`);
    cursor = ((await response.json()) as { nextCursor: string | null }).nextCursor;
  }
  return cursor;
})();
const login = await fetch(`${base}/api/auth/login`, {
  method: 'POST',
  headers: json,
  body: JSON.stringify({ email: `bench-${run}-0@example.com`, password: 'bench password 1234' }),
}).then((r) => r.json() as Promise<{ accessToken: string }>);

const results = [
  await measure('GET /health (reference)', () => fetch(`${base}/health`)),
  await measure('GET /api/users/{id}', (i) => fetch(`${base}/api/users/${ids[i % ids.length]}`)),
  await measure('GET /api/users?limit=20 (first page)', () => fetch(`${base}/api/users?limit=20`)),
  await measure('GET /api/users?limit=20 (page 91)', () =>
    fetch(`${base}/api/users?limit=20&cursor=${deepCursor}`),
  ),
  await measure('GET /api/auth/me', () =>
    fetch(`${base}/api/auth/me`, { headers: { authorization: `Bearer ${login.accessToken}` } }),
  ),
  await measure(`POST /api/auth/login (bcrypt cost ${config.bcryptCost})`, () =>
    fetch(`${base}/api/auth/login`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({
        email: `bench-${run}-1@example.com`,
        password: 'bench password 1234',
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
  `\npage 91 / first page throughput: ${(deep / first).toFixed(2)} (1.00 = deep pages cost the same)`,
);

await app.close();
await database.close();
