import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledSpecPath, projectRoot } from '../../src/paths.js';
import { loadSpec } from '../../src/spec.js';
import { freePort } from '../helpers/values.js';

/** `npm run mock` (Prism on generated/openapi.json) answers from the spec's examples. */

let prism: ChildProcess;
let base: string;

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  prism = spawn(
    process.execPath,
    [
      'node_modules/@stoplight/prism-cli/dist/index.js',
      'mock',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      bundledSpecPath,
    ],
    { cwd: projectRoot, stdio: 'ignore' },
  );
  const deadline = Date.now() + 40_000;
  for (;;) {
    try {
      await fetch(`${base}/health`);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error('Prism did not start within 40 s');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}, 60_000);

afterAll(() => {
  prism?.kill();
});

type Example = { example?: unknown; examples?: Record<string, { value?: unknown; $ref?: string }> };

describe('the mock server', () => {
  it('answers with the example of the spec', async () => {
    const spec = loadSpec() as unknown as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { content: Record<string, Example> }> }>
      >;
    };
    const declared =
      spec.paths['/api/users']!.get!.responses['200']!.content['application/json']!.example;
    const response = await fetch(`${base}/api/users`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual(declared);
  });

  it('refuses a request the spec refuses, with the Problem example', async () => {
    const response = await fetch(`${base}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'not an email' }),
    });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await response.json()).toMatchObject({ code: 'VALIDATION_ERROR', status: 400 });
  });

  it('asks for a token where the spec does', async () => {
    const response = await fetch(`${base}/api/auth/me`);
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ code: 'UNAUTHORIZED' });
  });
});
