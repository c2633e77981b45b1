import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { projectRoot } from '../../src/paths.js';
import { freePort } from '../helpers/values.js';

/**
 * The server and the npm scripts as real processes, started the way a developer starts
 * them, for the end-to-end tests.
 */

export interface Running {
  readonly child: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
  /** The exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
}

/**
 * A quiet production-like environment: only what a process needs, so that nothing of the
 * test runner's (TEST_DATABASE_URL, a DATABASE_URL in the shell) leaks in. DATABASE_URL
 * is set empty, which means unset, and wins over a .env file in the project.
 */
function environment(extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    JWT_SECRET: 'e2e-secret-e2e-secret-e2e-secret-e2e',
    // Production requires it: the base of the links in emails.
    PUBLIC_URL: 'https://app.example.test',
    BCRYPT_COST: '4',
    DATABASE_URL: '',
    ...extra,
  };
}

/** Another user to run a process as (only root may). */
export interface RunAs {
  uid: number;
  gid: number;
}

function run(command: string, args: string[], env: Record<string, string>, user?: RunAs): Running {
  let output = '';
  const child = spawn(command, args, {
    cwd: projectRoot,
    env: environment(env),
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
  });
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { child, output: () => output, exited };
}

/**
 * The server as `npm start` runs it: package.json's own command, flags included, with this
 * Node in place of `node` and without npm in between.
 */
export function startServer(env: Record<string, string>, user?: RunAs): Running {
  const manifest = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as {
    scripts: { start: string };
  };
  const [command, ...args] = manifest.scripts.start.split(/\s+/);
  if (command !== 'node') throw new Error(`npm start no longer runs node: ${command}`);
  return run(process.execPath, args, env, user);
}

/** `npm run <script>`, as typed in a second terminal. */
export function runScript(script: string, env: Record<string, string>): Running {
  return run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', '--silent', script], env);
}

export interface Server extends Running {
  readonly base: string;
  /** SIGTERM, and the exit code. */
  stop(): Promise<number | null>;
}

/** Starts the server on a free port and waits until /health answers. */
export async function startedServer(env: Record<string, string>, user?: RunAs): Promise<Server> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = startServer({ PORT: String(port), HOST: '127.0.0.1', ...env }, user);
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (server.child.exitCode !== null || Date.now() > deadline) {
      server.child.kill('SIGKILL');
      throw new Error(`the server did not start:\n${server.output()}`);
    }
    await sleep(100);
  }
  return {
    ...server,
    base,
    stop: async () => {
      if (server.child.exitCode === null) server.child.kill('SIGTERM');
      return server.exited;
    },
  };
}

/**
 * Ends a process the tests started, whatever state it is in: SIGTERM first, so that a
 * server on the embedded database stops its PostgreSQL too; SIGKILL if it does not exit.
 */
export async function kill(running: Running | undefined): Promise<void> {
  if (!running || running.child.exitCode !== null || running.child.signalCode !== null) return;
  running.child.kill('SIGTERM');
  const stopped = await Promise.race([running.exited.then(() => true), sleep(15_000, false)]);
  if (!stopped) {
    running.child.kill('SIGKILL');
    await running.exited;
  }
}

export const demoPassword = 'correct horse battery staple';

export async function logIn(base: string, email: string, password = demoPassword) {
  return fetch(`${base}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
}
