import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSpec } from '../../src/spec.js';
import { startMock, type RunningMock } from '../helpers/mock.js';

/**
 * `npm run mock` answers from the spec's examples (Prism, behind the server's contract
 * layer); tests/contract/mock-vs-server.test.ts compares its refusals with the server's.
 */

let mock: RunningMock;
let base: string;

beforeAll(async () => {
  mock = await startMock();
  base = mock.base;
}, 60_000);

afterAll(async () => {
  await mock?.stop();
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

  it('refuses a request the spec refuses, naming its violations', async () => {
    const response = await fetch(`${base}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'not an email' }),
    });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = (await response.json()) as { errors: { pointer: string }[] };
    expect(problem).toMatchObject({ code: 'VALIDATION_ERROR', status: 400 });
    expect(problem.errors.map((error) => error.pointer).sort()).toEqual([
      '/email',
      '/password',
      '/username',
    ]);
  });

  it('asks for a token where the spec does', async () => {
    const response = await fetch(`${base}/api/auth/me`);
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('answers HEAD for a GET, with its status and headers and no body', async () => {
    const get = await fetch(`${base}/api/users`);
    const head = await fetch(`${base}/api/users`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe(get.headers.get('content-type'));
    expect(head.headers.get('content-length')).toBe(get.headers.get('content-length'));
    expect(await head.text()).toBe('');
  });

  it('answers 414 to a path parameter over 255 characters, as the server does', async () => {
    const response = await fetch(`${base}/api/users/${'a'.repeat(256)}`);
    expect(response.status).toBe(414);
    expect(await response.json()).toMatchObject({ code: 'URI_TOO_LONG' });
  });
});
