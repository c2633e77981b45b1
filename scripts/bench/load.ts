/**
 * The load generator of `npm run bench`, in a process of its own (forked by main.ts), so that
 * it never shares an event loop with a server or with the harness. It runs autocannon for
 * each job it is sent over IPC and answers with the figures; jobs sent together run at the
 * same time (getPost while logins arrive).
 *
 * A job's requests take the next of its `paths`, `bodies` or `headers` in turn, across all
 * connections: a pool of single-use refresh tokens is consumed in order, each token once.
 */
import autocannon from 'autocannon';
import { Pool } from 'undici';

export interface LoadJob {
  url: string;
  method: 'GET' | 'POST';
  seconds: number;
  connections: number;
  /** A fixed rate (requests per second over all connections); unset: as fast as answered. */
  rate?: number;
  /**
   * Send at `rate`, each request at its due time whether or not the earlier ones were
   * answered (see openLoop), over `connections` connections: a fixed load, evenly spread.
   */
  openLoop?: boolean;
  headers?: Record<string, string>;
  /** Paths (with query) taken in turn; the URL's own path when unset. */
  paths?: string[];
  /** JSON bodies taken in turn. */
  bodies?: string[];
  /** Authorization headers taken in turn. */
  authorizations?: string[];
}

export interface LoadResult {
  requests: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** How many responses of each status. */
  statuses: Record<string, number>;
  /** How many entries of a pool (paths, bodies, authorizations) were taken. */
  taken: number;
}

export interface LoadMessage {
  id: number;
  jobs: LoadJob[];
}

export interface LoadReply {
  id: number;
  results?: LoadResult[];
  error?: string;
}

const quantileOf = (sorted: Float64Array, q: number) =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;

/**
 * An open loop: request i is due at start + i/rate and is sent then (every request due by
 * the time the loop wakes, at most a millisecond late), whether or not the earlier ones were
 * answered, over a pool of `connections` keep-alive connections (a request that finds them
 * all busy waits in the pool's queue, and that wait counts). Its latency runs from its due
 * time, so a server that falls behind is charged for it (no coordinated omission).
 * autocannon's own `overallRate` is not this: each connection sends its share of a second
 * as fast as it is answered and then waits for the next second, a burst at full load.
 */
async function openLoop(job: LoadJob): Promise<LoadResult> {
  const rate = job.rate ?? 1;
  const total = Math.max(1, Math.floor(rate * job.seconds));
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let errors = 0;
  const url = new URL(job.url);
  const pool = new Pool(url.origin, { connections: job.connections, pipelining: 1 });
  const headers = {
    'user-agent': 'npm-run-bench',
    ...(job.bodies ? { 'content-type': 'application/json' } : {}),
    ...job.headers,
  };
  const send = async (i: number, due: number) => {
    const body = job.bodies?.[i % job.bodies.length];
    try {
      const response = await pool.request({
        path: job.paths?.[i % job.paths.length] ?? url.pathname + url.search,
        method: job.method,
        headers,
        ...(body ? { body } : {}),
      });
      await response.body.dump({ limit: Number.POSITIVE_INFINITY });
      const status = response.statusCode;
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status >= 200 && status < 300) latencies.push(performance.now() - due);
    } catch {
      errors += 1;
    }
  };
  const start = performance.now();
  const sent: Promise<void>[] = [];
  let next = 0;
  while (next < total) {
    const now = performance.now();
    for (; next < total && start + (next * 1000) / rate <= now; next += 1) {
      sent.push(send(next, start + (next * 1000) / rate));
    }
    const wait = start + (next * 1000) / rate - performance.now();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(wait, 1))));
  }
  await Promise.all(sent);
  await pool.close();
  const sorted = Float64Array.from(latencies).sort();
  const seconds = (performance.now() - start) / 1000;
  const ok = Object.entries(statuses)
    .filter(([code]) => code.startsWith('2'))
    .reduce((n, [, count]) => n + count, 0);
  return {
    requests: total,
    seconds,
    perSecond: total / seconds,
    p50Ms: quantileOf(sorted, 0.5),
    p99Ms: quantileOf(sorted, 0.99),
    non2xx: total - ok - errors,
    errors,
    timeouts: 0,
    taken: total,
    statuses,
  };
}

async function run(job: LoadJob): Promise<LoadResult> {
  if (job.openLoop) return openLoop(job);
  let next = 0;
  const pool = job.paths ?? job.bodies ?? job.authorizations;
  const take = <T>(list: T[]): T => list[next++ % list.length]!;
  const headers = {
    'user-agent': 'npm-run-bench',
    ...(job.bodies ? { 'content-type': 'application/json' } : {}),
    ...job.headers,
  };
  // Each 2xx response's time, in fractional milliseconds (autocannon's own histogram keeps
  // whole milliseconds, too coarse for requests that take one or two).
  const latencies: number[] = [];
  const started = process.hrtime.bigint();
  let instance: autocannon.Instance | undefined;
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(
      {
        url: job.url,
        method: job.method,
        duration: job.seconds,
        connections: job.connections,
        ...(job.rate ? { overallRate: job.rate } : {}),
        headers,
        requests: [
          {
            method: job.method,
            setupRequest: (request) => {
              if (job.paths) return { ...request, path: take(job.paths) };
              if (job.bodies) return { ...request, body: take(job.bodies) };
              if (job.authorizations) {
                return {
                  ...request,
                  headers: { ...headers, authorization: take(job.authorizations) },
                };
              }
              return request;
            },
          },
        ],
      },
      (error: unknown, result) =>
        error
          ? reject(error instanceof Error ? error : new Error('autocannon failed'))
          : resolve(result),
    );
  });
  instance!.on('response', (_client, statusCode: number, _bytes, ms: number) => {
    if (statusCode >= 200 && statusCode < 300) latencies.push(ms);
  });
  const result = await finished;
  const sorted = Float64Array.from(latencies).sort();
  const quantile = (q: number) => quantileOf(sorted, q);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const requests = result.requests.total;
  return {
    requests,
    seconds,
    perSecond: requests / job.seconds,
    p50Ms: quantile(0.5),
    p99Ms: quantile(0.99),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    taken: pool ? next : 0,
    statuses: Object.fromEntries(
      Object.entries(result.statusCodeStats ?? {}).map(([code, { count }]) => [code, count ?? 0]),
    ),
  };
}

process.on('message', (message: LoadMessage) => {
  Promise.all(message.jobs.map(run)).then(
    (results) => process.send!({ id: message.id, results } satisfies LoadReply),
    (error: unknown) => process.send!({ id: message.id, error: String(error) } satisfies LoadReply),
  );
});
process.on('disconnect', () => process.exit(0));
