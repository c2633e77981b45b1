/**
 * The benches' helper processes (load.ts, live-clients.ts): each forked with tsx and asked
 * over IPC, every message with an id its reply carries back; and the machine's CPU time from
 * /proc/stat, to tell how busy the cores were around a measured run.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root, with a trailing slash: a profile's file URLs are shown from it. */
const root = fileURLToPath(new URL('../..', import.meta.url));

/** A message without its id, for each member of a union. */
export type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

/** Forks `file` (of scripts/bench/): `ask` sends a message and resolves with its reply. */
export function helper<
  Message extends { id: number },
  Reply extends { id: number; error?: string },
>(file: string) {
  const child: ChildProcess = fork(fileURLToPath(new URL(file, import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  let next = 0;
  child.on('message', (reply: Reply) => {
    const entry = waiting.get(reply.id);
    waiting.delete(reply.id);
    if (reply.error) entry?.reject(new Error(`${file}: ${reply.error}`));
    else entry?.resolve(reply);
  });
  child.once('exit', (code) => {
    for (const entry of waiting.values()) entry.reject(new Error(`${file} exited ${code}`));
    waiting.clear();
  });
  return {
    child,
    ask(message: WithoutId<Message>): Promise<Reply> {
      const id = next++;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        child.send({ ...message, id });
      });
    },
    stop: () => child.connected && child.disconnect(),
  };
}

/** The machine's CPU time so far (/proc/stat's first line, in ticks): busy and in all. */
export function machineCpu(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] =
    fields.map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/** CLOCK_MONOTONIC in µs: the clock of a V8 CPU profile's timestamps, in any process. */
export const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/**
 * The functions with the most self time in the newest profile of `profileDir` within the
 * `windows` (monotonic µs), and the packages or places they live in, as markdown tables.
 */
export function profileSummary(
  profileDir: string,
  windows: { start: number; end: number }[],
  what: string,
): string {
  const files = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
  const newest = files.sort().at(-1);
  if (!newest) return 'no profile written';
  const profile = JSON.parse(readFileSync(join(profileDir, newest), 'utf8')) as {
    nodes: {
      id: number;
      callFrame: { functionName: string; url: string; lineNumber: number };
    }[];
    samples: number[];
    timeDeltas: number[];
    startTime: number;
  };
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const frame = nodes.get(id)!.callFrame;
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (!windows.some((w) => at >= w.start && at <= w.end)) return;
    if (frame.functionName === '(idle)') {
      idle += delta;
      return;
    }
    total += delta;
    const file = frame.url.replace(/^file:\/\//, '').replace(`${root}`, '');
    const key = `${frame.functionName || '(anonymous)'}\t${file ? `${file}:${frame.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + delta);
  });
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 20);
  // By where the code lives: a package, the API's own code, Node's, or native (no file).
  const places = new Map<string, number>();
  for (const [key, us] of self) {
    const [name, file = ''] = key.split('\t');
    const place = file.startsWith('node_modules/')
      ? file
          .split('/')
          .slice(1, file.startsWith('node_modules/@') ? 3 : 2)
          .join('/')
      : file.startsWith('dist/')
        ? 'the API (dist/)'
        : file.startsWith('node:')
          ? 'Node (JavaScript)'
          : file === ''
            ? `native or V8: ${name}`
            : file;
    places.set(place, (places.get(place) ?? 0) + us);
  }
  const topPlaces = [...places.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
  return [
    `${newest}, ${what}: ${(total / 1e6).toFixed(2)} s busy, ${(idle / 1e6).toFixed(2)} s idle`,
    '',
    '| self % | function |',
    '| --- | --- |',
    ...top.map(
      ([key, us]) =>
        `| ${((100 * us) / total).toFixed(1)} | \`${key.replace('\t', ' ').trim()}\` |`,
    ),
    '',
    '| self % | where |',
    '| --- | --- |',
    ...topPlaces.map(([place, us]) => `| ${((100 * us) / total).toFixed(1)} | ${place} |`),
  ].join('\n');
}

/**
 * A run's figures in `dir`: `<kind>-<time>.{json,md}`, and `<kind>-latest.*` (with `--quick`,
 * `<kind>-latest-quick.*`) for the newest.
 */
export function writeResults(
  dir: string,
  run: { kind: string; startedAt: number; quick: boolean },
  json: unknown,
  markdown: string,
): void {
  mkdirSync(dir, { recursive: true });
  const stamp = new Date(run.startedAt).toISOString().replace(/[:.]/g, '-');
  const latest = run.quick ? `${run.kind}-latest-quick` : `${run.kind}-latest`;
  for (const file of [`${run.kind}-${stamp}`, latest]) {
    writeFileSync(join(dir, `${file}.json`), `${JSON.stringify(json, null, 2)}\n`);
    writeFileSync(join(dir, `${file}.md`), `${markdown}\n`);
  }
}

/** Runs a bench's main and exits with its code, or with 1 after printing what it threw. */
export function runBench(main: () => Promise<number>, done: () => void): void {
  main().then(
    (code) => {
      done();
      process.exit(code);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
