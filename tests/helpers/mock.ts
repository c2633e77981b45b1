import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { projectRoot } from '../../src/paths.js';
import { freePort } from './values.js';

export interface RunningMock {
  readonly child: ChildProcess;
  /** http://127.0.0.1:<port> */
  readonly base: string;
  /** stdout and stderr so far. */
  output(): string;
  /** SIGTERM (the mock stops its Prism too), and the exit. */
  stop(): Promise<void>;
}

/**
 * The mock as `npm run mock` runs it: package.json's own command (tsx scripts/mock.ts),
 * with this Node and without npm in between, on free ports; resolves once it answers.
 */
export async function startMock(): Promise<RunningMock> {
  const manifest = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as {
    scripts: { mock: string };
  };
  const [command, ...args] = manifest.scripts.mock.split(/\s+/);
  if (command !== 'tsx') throw new Error(`npm run mock no longer runs tsx: ${command}`);
  const port = await freePort();
  const prismPort = await freePort();
  let output = '';
  const child = spawn(
    process.execPath,
    [
      join(projectRoot, 'node_modules/tsx/dist/cli.mjs'),
      ...args,
      '--port',
      String(port),
      '--prism-port',
      String(prismPort),
    ],
    { cwd: projectRoot, env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: 'pipe' },
  );
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 50_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the mock stopped:\n${output}`);
    try {
      await fetch(`${base}/health`);
      return { child, base, output: () => output, stop };
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`the mock did not answer within 50 s:\n${output}`);
      }
      await sleep(100);
    }
  }
}
