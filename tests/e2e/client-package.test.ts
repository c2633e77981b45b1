import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { loadSpec } from '../../src/spec.js';
import { useTestApp } from '../helpers/app.js';

/**
 * client/ as a frontend gets it: `npm pack`, installed from the tarball into a project of
 * its own (with nothing of this repository around it), compiled against by TypeScript and
 * imported by Node, calling a server on a real port.
 */

const run = promisify(execFile);
const clientDir = join(projectRoot, 'client');
const manifest = JSON.parse(readFileSync(join(clientDir, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
};
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

/** npm as a person runs it: nothing of an npm script around this test run leaks in. */
function npm(args: string[], cwd: string) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_')),
  );
  return run(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, {
    cwd,
    env,
    maxBuffer: 16 * 1024 * 1024,
  });
}

const t = useTestApp();
let work: string;
let consumer: string;
let packed: { filename: string; files: Array<{ path: string }> };

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'api-client-package-'));
  consumer = join(work, 'frontend');
  // prepack builds dist/ from src/ and generated/api.d.ts.
  const { stdout } = await npm(['pack', '--json', '--pack-destination', work], clientDir);
  const [result] = JSON.parse(stdout.slice(stdout.search(/^\[/m))) as [typeof packed];
  packed = result;

  await mkdir(consumer);
  await writeFile(
    join(consumer, 'package.json'),
    JSON.stringify({ name: 'frontend', private: true, type: 'module' }),
  );
  // openapi-fetch comes from npm's cache when it is there (it is after the root `npm ci`).
  await npm(
    ['install', '--prefer-offline', '--no-audit', '--no-fund', join(work, packed.filename)],
    consumer,
  );
  await t.app.listen({ port: 0, host: '127.0.0.1' });
}, 120_000);

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('the client package', () => {
  it("carries the spec's version and the openapi-fetch the tests use", () => {
    expect(manifest.version, 'client/package.json version vs the spec info.version').toBe(
      loadSpec().info.version,
    );
    const root = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as {
      devDependencies: Record<string, string>;
    };
    expect(manifest.dependencies['openapi-fetch']).toBe(root.devDependencies['openapi-fetch']);
  });

  it('packs the compiled client and the generated types, nothing else', () => {
    expect(packed.files.map((file) => file.path).sort()).toEqual([
      'README.md',
      'dist/api.d.ts',
      'dist/asyncapi.d.ts',
      'dist/index.d.ts',
      'dist/index.js',
      'dist/live.d.ts',
      'dist/live.js',
      'package.json',
    ]);
    for (const types of ['api.d.ts', 'asyncapi.d.ts']) {
      expect(readFileSync(join(clientDir, 'dist', types), 'utf8')).toBe(
        readFileSync(join(projectRoot, 'generated', types), 'utf8'),
      );
    }
  });

  it('type-checks a frontend that imports it, and refuses what the spec does not allow', async () => {
    await writeFile(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2022', 'DOM'],
          module: 'ESNext',
          moduleResolution: 'Bundler',
          strict: true,
          noEmit: true,
          types: [],
        },
        include: ['app.ts'],
      }),
    );
    await writeFile(
      join(consumer, 'app.ts'),
      `import {
  createApiClient,
  createLiveClient,
  type MeEventMessage,
  type Problem,
  type Schemas,
} from '${manifest.name}';

let token: string | undefined;
const api = createApiClient({ baseUrl: 'https://api.example.com', token: () => token });

export async function show(id: string): Promise<string> {
  const { data, error } = await api.GET('/api/posts/{id}', { params: { path: { id } } });
  if (error) {
    const problem: Problem = error;
    return problem.code;
  }
  const post: Schemas['Post'] = data;
  return post.title;
}

export async function logIn(email: string, password: string): Promise<void> {
  const { data } = await api.POST('/api/auth/login', { body: { email, password } });
  token = data?.accessToken;
}

// The browser's WebSocket is the default, and fits.
const live = createLiveClient({ url: 'wss://api.example.com/api/live', WebSocket, token: () => token });
live.subscribe('me', (event: MeEventMessage['event']) => console.log(event.type));
live.subscribe('posts', (event) => console.log(event.data.id));

export function mistakes() {
  // @ts-expect-error no such channel
  live.subscribe('users', () => {});
  // @ts-expect-error no such path
  void api.GET('/api/nowhere');
  // @ts-expect-error createUser needs a username and a password
  void api.POST('/api/users', { body: { email: 'a@example.com' } });
  // @ts-expect-error the id is a path parameter, and it is required
  void api.GET('/api/posts/{id}', {});
  // @ts-expect-error updatePost takes no numbers for a title
  void api.PATCH('/api/posts/{id}', { params: { path: { id: 'x' } }, body: { title: 1 } });
}
`,
    );
    const checked = await run(process.execPath, [tsc, '-p', consumer]).catch(
      (error: { stdout: string }) => ({ stdout: error.stdout }),
    );
    expect(checked.stdout).toBe('');
  }, 60_000);

  it("runs the live client from the installed tarball with ws's WebSocket", async () => {
    const address = t.app.server.address();
    const url = `ws://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/api/live`;
    await writeFile(
      join(consumer, 'live.js'),
      `import { createLiveClient } from '${manifest.name}';
import WebSocket from ${JSON.stringify(pathToFileURL(join(projectRoot, 'node_modules/ws/wrapper.mjs')).href)};
const statuses = [];
const live = createLiveClient({ url: process.argv[2], WebSocket, onStatus: (s) => statuses.push(s) });
await live.subscribe('posts', () => {}).ready;
await live.ping();
const refused = await live.subscribe('me', () => {}).ready.catch((error) => error.problem.code);
live.close();
console.log(JSON.stringify({ statuses, refused }));
`,
    );
    const { stdout } = await run(process.execPath, ['live.js', url], { cwd: consumer });
    expect(JSON.parse(stdout)).toEqual({
      statuses: ['connecting', 'connected', 'closed'],
      refused: 'UNAUTHORIZED',
    });
  });

  it('is imported by Node from the installed tarball and calls the server with a token', async () => {
    const address = t.app.server.address();
    const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    const email = `packed${Date.now().toString(36)}@example.com`;
    await writeFile(
      join(consumer, 'call.js'),
      `import { createApiClient } from '${manifest.name}';
let token;
const api = createApiClient({ baseUrl: process.argv[2], token: () => token });
const email = process.argv[3];
const password = 'pass phrase of the packed client';
const created = await api.POST('/api/users', {
  body: { email, username: email.split('@')[0], password },
});
const login = await api.POST('/api/auth/login', { body: { email, password } });
token = login.data.accessToken;
const me = await api.GET('/api/auth/me');
const missing = await api.GET('/api/posts/{id}', {
  params: { path: { id: '00000000-0000-4000-8000-000000000000' } },
});
console.log(JSON.stringify({
  created: created.response.status,
  me: me.data.email,
  missing: [missing.response.status, missing.error.code],
}));
`,
    );
    const { stdout } = await run(process.execPath, ['call.js', base, email], { cwd: consumer });
    expect(JSON.parse(stdout)).toEqual({
      created: 201,
      me: email,
      missing: [404, 'NOT_FOUND'],
    });
  });
});
