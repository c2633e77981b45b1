import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createWebhookDispatcher,
  createWebhookSecret,
  sendWebhook,
} from '../../src/lib/webhooks/index.js';
import { projectRoot } from '../../src/paths.js';
import { freePort } from '../helpers/values.js';
import { readManual } from './manual.js';

/**
 * docs/webhooks.md's receiver, as a reader copies it: the JavaScript block after the
 * `<!-- receiver-example -->` comment, run with node, sent deliveries signed the way the
 * worker signs them.
 */

const MARKER = '<!-- receiver-example -->';

function receiverExample(): string {
  const text = readManual('docs/webhooks.md');
  const at = text.indexOf(MARKER);
  if (at < 0) throw new Error(`docs/webhooks.md lost its ${MARKER} comment`);
  const block = /```js\n([\s\S]*?)```/.exec(text.slice(at));
  if (!block?.[1]) throw new Error(`docs/webhooks.md has no js block after ${MARKER}`);
  return block[1];
}

const secret = createWebhookSecret();
const dispatcher = createWebhookDispatcher({ allowPrivateNetworks: true });
// Inside node_modules, so that the example's `import 'standardwebhooks'` resolves as in a
// project that installed it.
const folder = join(
  projectRoot,
  'node_modules',
  '.cache',
  `receiver-${randomBytes(4).toString('hex')}`,
);
let child: ChildProcess;
let output = '';
let url = '';

/** Resolves once the port takes connections: the example prints nothing when it listens. */
async function listening(port: number): Promise<void> {
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (child.exitCode !== null) throw new Error(`the receiver exited: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

beforeAll(async () => {
  mkdirSync(folder, { recursive: true });
  const file = join(folder, 'receiver.mjs');
  writeFileSync(file, receiverExample());
  const port = await freePort();
  child = spawn(process.execPath, [file], {
    env: { PATH: process.env.PATH ?? '', WEBHOOK_SECRET: secret, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  url = `http://127.0.0.1:${port}/webhooks`;
  await listening(port);
}, 30_000);

afterAll(async () => {
  child.kill();
  await dispatcher.close();
  rmSync(folder, { recursive: true, force: true });
});

const body = JSON.stringify({
  type: 'post.published',
  timestamp: '2026-12-07T10:15:00.000Z',
  data: { id: '0b9f7c53-2c1e-4b63-9d0e-6c1f2d8e5a41', title: 'Hello' },
});

describe("docs/webhooks.md's receiver", () => {
  it('accepts a signed delivery, and handles a repeated webhook-id once', async () => {
    const id = '6f1d3c1a-6a8e-4f55-9f3a-2b7c1f0e9d10';
    const first = await sendWebhook({ url, id, body, secrets: [secret] }, { dispatcher });
    const again = await sendWebhook({ url, id, body, secrets: [secret] }, { dispatcher });

    expect(first).toMatchObject({ ok: true, status: 204 });
    expect(again).toMatchObject({ ok: true, status: 204 });
    expect(output.match(/post\.published: /g)).toHaveLength(1);
    expect(output).toContain('"title":"Hello"');
  });

  it('accepts a delivery signed during a rotation, with the previous secret among two', async () => {
    const id = '0d3f7b0e-0f5e-4a3c-8f9e-1c2b3a4d5e6f';
    const result = await sendWebhook(
      { url, id, body, secrets: [createWebhookSecret(), secret] },
      { dispatcher },
    );
    expect(result).toMatchObject({ ok: true, status: 204 });
  });

  it('refuses a delivery signed with another secret', async () => {
    const id = 'e3b1f0a2-7c4d-4e5f-8a9b-0c1d2e3f4a5b';
    const result = await sendWebhook(
      { url, id, body, secrets: [createWebhookSecret()] },
      { dispatcher },
    );
    expect(result).toMatchObject({ ok: false, status: 400, body: 'invalid signature' });
  });
});
