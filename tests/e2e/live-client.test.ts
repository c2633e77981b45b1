import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { readManual, useManualServer } from './manual.js';

/**
 * docs/live.md's client, as a reader copies it: the JavaScript block after the
 * `<!-- live-client-example -->` comment, run with node against a server started as
 * `npm start` runs it (development: the events relay in the process). It must print a post
 * published through the REST API, and a logout of its session must end it with 4001.
 */

const MARKER = '<!-- live-client-example -->';

function clientExample(): string {
  const text = readManual('docs/live.md');
  const at = text.indexOf(MARKER);
  if (at < 0) throw new Error(`docs/live.md lost its ${MARKER} comment`);
  const block = /```js\n([\s\S]*?)```/.exec(text.slice(at));
  if (!block?.[1]) throw new Error(`docs/live.md has no js block after ${MARKER}`);
  return block[1];
}

// Inside node_modules, so that the example's `import 'ws'` resolves as in a project that
// installed it.
const folder = join(
  projectRoot,
  'node_modules',
  '.cache',
  `live-${randomBytes(4).toString('hex')}`,
);

describe('the WebSocket client of docs/live.md', () => {
  const manual = useManualServer('api-live-client-');
  let child: ChildProcess | undefined;
  let output = '';
  let exited: Promise<number | null>;
  let token = '';

  const api = async (method: string, path: string, body?: unknown, bearer = token) => {
    const response = await fetch(`${manual.server.base}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return {
      status: response.status,
      json: (text ? JSON.parse(text) : null) as Record<string, unknown>,
    };
  };

  /** Waits until the example has printed a line that matches. */
  const printed = async (pattern: RegExp, timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(output)) {
      if (Date.now() > deadline)
        throw new Error(`the example did not print ${pattern}:\n${output}`);
      await sleep(50);
    }
  };

  beforeAll(async () => {
    const suffix = randomBytes(4).toString('hex');
    const account = {
      email: `live${suffix}@example.com`,
      username: `live${suffix}`,
      password: 'correct horse battery staple',
    };
    expect((await api('POST', '/api/users', account, '')).status).toBe(201);
    const { email, password } = account;
    const login = await api('POST', '/api/auth/login', { email, password }, '');
    expect(login.status).toBe(200);
    token = login.json.accessToken as string;

    mkdirSync(folder, { recursive: true });
    const file = join(folder, 'live.mjs');
    writeFileSync(file, clientExample());
    child = spawn(process.execPath, [file], {
      env: { PATH: process.env.PATH ?? '', API_URL: manual.server.base, TOKEN: token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    exited = new Promise((resolve) => child?.once('exit', resolve));
  }, 60_000);

  afterAll(() => {
    if (child && child.exitCode === null) child.kill();
    rmSync(folder, { recursive: true, force: true });
  });

  it('authenticates and subscribes to posts and me', async () => {
    await printed(/^authenticated$/m);
    await printed(/^subscribed posts$/m);
    await printed(/^subscribed me$/m);
    expect(output).not.toMatch(/^error/m);
  });

  it('prints a post as it is published', { timeout: 30_000 }, async () => {
    const created = await api('POST', '/api/posts', {
      title: 'Live from the manual',
      content: 'Published while a socket listens.',
    });
    expect(created.status).toBe(201);
    const id = created.json.id as string;
    expect((await api('POST', `/api/posts/${id}/publish`)).status).toBe(200);
    await printed(new RegExp(`^posts post\\.published \\{"id":"${id}"`, 'm'));
    const line = output.split('\n').find((entry) => entry.startsWith('posts post.published'));
    expect(JSON.parse(line!.slice('posts post.published '.length))).toMatchObject({
      id,
      title: 'Live from the manual',
    });
  });

  it('hears its session end at logout, and stops after 4001', { timeout: 30_000 }, async () => {
    expect((await api('POST', '/api/auth/logout')).status).toBe(204);
    await printed(/^me session\.ended .*"current":true/m);
    await printed(/^closed 4001$/m);
    await expect(exited).resolves.toBe(1);
    expect(output).not.toMatch(/reconnecting/);
  });
});
