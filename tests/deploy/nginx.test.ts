import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../../src/config/index.js';
import { kill, startedServer, type Server } from '../e2e/processes.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { freePort } from '../helpers/values.js';
import { composeFile, kubernetesManifests, readText, seconds } from './files.js';

/**
 * deploy/nginx/nginx.conf, the load balancer of docker-compose.yml, run for real: nginx in
 * front of two servers (separate processes on one PostgreSQL database), with the api
 * service's TRUST_PROXY. Only the lines that name compose's hosts and the container's
 * paths change (see `render`). No Docker engine runs here; nginx and the servers run as
 * plain processes.
 */

const nginxBinary = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/bin/nginx'].find(
  (path) => existsSync(path),
);
if (!nginxBinary) {
  console.warn(
    'tests/deploy/nginx.test.ts skipped: nginx is not installed (apt-get install -y nginx; .ci/run installs it)',
  );
}

/** The compose file's config with the upstream servers, the port and the paths given. */
function render(directory: string, port: number, upstreams: readonly number[]): string {
  let text = readText('deploy/nginx/nginx.conf');
  // pid and the five temp folders, written by nginx: into the test's folder.
  expect(text.match(/\/tmp\//g)).toHaveLength(6);
  text = text.replaceAll('/tmp/', `${directory}/`);
  const replace = (pattern: RegExp, by: string) => {
    const matches = text.match(new RegExp(pattern.source, 'gm'));
    // One line each: a change to the file that moves what the test replaces fails here.
    expect(matches, String(pattern)).toHaveLength(1);
    text = text.replace(new RegExp(pattern.source, 'm'), by);
  };
  replace(
    /^(\s*)server api:3333 (.*);$/,
    upstreams.map((p) => `$1server 127.0.0.1:${p} $2;`).join('\n'),
  );
  replace(/^(\s*)listen 8080;$/, `$1listen 127.0.0.1:${port};`);
  replace(/^error_log \/dev\/stderr warn;$/, `error_log ${directory}/error.log warn;`);
  return text;
}

function nginxTest(configPath: string): { status: number | null; output: string } {
  const result = spawnSync(
    nginxBinary ?? 'nginx',
    ['-t', '-q', '-c', configPath, '-e', '/dev/stderr'],
    {
      encoding: 'utf8',
    },
  );
  return { status: result.status, output: result.stderr };
}

interface LogLine {
  msg?: string;
  requestId?: string;
  req?: { url?: string; remoteAddress?: string };
}
function logLines(server: Server): LogLine[] {
  return server
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

/** A GET through nginx from a chosen local address (127.0.0.0/8 is all loopback). */
function get(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  localAddress = '127.0.0.1',
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, headers, localAddress, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

interface Cluster {
  port: number;
  servers: [Server, Server];
  nginx: ChildProcess;
  directory: string;
  close(): Promise<void>;
}

const apiEnvironment = (
  composeFile() as { services: { api: { environment: Record<string, string> } } }
).services.api.environment;

async function startCluster(database: TestDatabase | undefined): Promise<Cluster> {
  const directory = mkdtempSync(join(tmpdir(), 'nginx-'));
  // nginx's workers run as nobody: they must reach the temp folders inside.
  chmodSync(directory, 0o755);
  const started: Server[] = [];
  let nginx: ChildProcess | undefined;
  const close = async () => {
    if (nginx && nginx.exitCode === null && nginx.signalCode === null) {
      const exited = new Promise((resolve) => nginx?.once('exit', resolve));
      nginx.kill('SIGQUIT');
      await Promise.race([exited, sleep(5000)]);
      if (nginx.exitCode === null && nginx.signalCode === null) nginx.kill('SIGKILL');
    }
    await Promise.all(started.map((server) => kill(server)));
    rmSync(directory, { recursive: true, force: true });
  };
  try {
    for (const instance of [1, 2]) {
      started.push(
        await startedServer({
          DATABASE_URL: database?.url ?? '',
          ...(database?.url ? {} : { DATA_DIR: join(directory, `data-${instance}`) }),
          LOG_LEVEL: 'info',
          TRUST_PROXY: apiEnvironment.TRUST_PROXY ?? '',
          SHUTDOWN_TIMEOUT: apiEnvironment.SHUTDOWN_TIMEOUT ?? '10s',
          RATE_LIMIT_AUTH_MAX: '1000',
          // The traffic comes from one client address as fast as the servers answer: a
          // per-client limit on all operations would turn it into 429s past 1000 a window.
          RATE_LIMIT_MAX: '0',
        }),
      );
    }
    const port = await freePort();
    const ports = started.map((server) => Number(new URL(server.base).port));
    const configPath = join(directory, 'nginx.conf');
    writeFileSync(configPath, render(directory, port, ports));
    const checked = nginxTest(configPath);
    if (checked.status !== 0) throw new Error(`nginx -t: ${checked.output}`);
    nginx = spawn(
      nginxBinary ?? 'nginx',
      ['-c', configPath, '-e', join(directory, 'error.log'), '-g', 'daemon off;'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    for (let attempt = 0; ; attempt += 1) {
      try {
        if ((await get(port, '/health')).status === 200) break;
      } catch {
        // not listening yet
      }
      if (attempt > 100 || nginx.exitCode !== null) {
        throw new Error(
          `nginx did not start: ${readFileSync(join(directory, 'error.log'), 'utf8')}`,
        );
      }
      await sleep(50);
    }
    return { port, servers: started as [Server, Server], nginx, directory, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Which server logged the request with this id, and the client address it logged. */
function whoServed(servers: readonly Server[], requestId: string) {
  for (const [index, server] of servers.entries()) {
    const line = logLines(server).find(
      (entry) => entry.requestId === requestId && entry.msg === 'request completed',
    );
    if (line) return { index, remoteAddress: line.req?.remoteAddress };
  }
  return undefined;
}

/** The body of the first block whose header matches, e.g. `location = /api/live` (braces counted). */
function blockOf(text: string, header: RegExp): string {
  const start = new RegExp(`${header.source}\\s*\\{`, 'm').exec(text);
  if (!start) throw new Error(`no block ${String(header)}`);
  let depth = 0;
  for (let i = start.index + start[0].length - 1; i < text.length; i++) {
    if (text[i] === '{') depth += 1;
    if (text[i] === '}' && --depth === 0) return text.slice(start.index + start[0].length, i);
  }
  throw new Error(`unclosed block ${String(header)}`);
}

/** The directives of a block's own level (nested blocks and comments left out). */
function directivesOf(body: string): string[] {
  let flat = body.replace(/#.*$/gm, '');
  for (;;) {
    const inner = flat.replace(/[^{};]*\{[^{}]*\}/g, '');
    if (inner === flat) break;
    flat = inner;
  }
  return flat
    .split(';')
    .map((directive) => directive.trim().replace(/\s+/g, ' '))
    .filter(Boolean);
}

describe('deploy/nginx/nginx.conf and the WebSocket (GET /api/live)', () => {
  const text = readText('deploy/nginx/nginx.conf');
  const server = blockOf(text, /^\s*server/);
  const live = directivesOf(blockOf(server, /location = \/api\/live/));
  const heartbeat = loadConfig({}).live.heartbeatIntervalMs / 1000;

  it('passes the Upgrade: HTTP/1.1 to the servers, Upgrade and Connection from a map', () => {
    expect(blockOf(text, /map \$http_upgrade \$connection_upgrade/)).toMatch(
      /^\s*default upgrade;\s*'' '';\s*$/,
    );
    const shared = directivesOf(server);
    expect(shared).toEqual(
      expect.arrayContaining([
        'proxy_http_version 1.1',
        'proxy_set_header Upgrade $http_upgrade',
        'proxy_set_header Connection $connection_upgrade',
      ]),
    );
  });

  it('sets the proxy headers once, for every location (one set in a location drops the others there)', () => {
    const locations = [...server.replace(/#.*$/gm, '').matchAll(/location[^{]*\{[^}]*\}/g)];
    expect(locations).toHaveLength(2);
    for (const location of locations) {
      expect(location[0], 'a location').not.toMatch(/proxy_set_header|proxy_http_version/);
    }
    expect(live).toContain('proxy_pass http://api');
  });

  it('keeps a quiet socket open longer than the heartbeat, and does not buffer its frames', () => {
    expect(heartbeat).toBe(30);
    const timeout = (name: string) => {
      const directive = live.find((entry) => entry.startsWith(`${name} `));
      expect(directive, name).toBeDefined();
      return seconds(directive!.split(' ')[1]!);
    };
    // The ping and its answer are the only traffic of a quiet socket: twice the interval at least.
    expect(timeout('proxy_read_timeout')).toBeGreaterThanOrEqual(2 * heartbeat);
    expect(timeout('proxy_send_timeout')).toBeGreaterThanOrEqual(2 * heartbeat);
    expect(live).toContain('proxy_buffering off');
  });
});

describe.skipIf(!nginxBinary)('deploy/nginx/nginx.conf in front of two servers', () => {
  let database: TestDatabase | undefined;
  let cluster: Cluster | undefined;

  beforeAll(async () => {
    database = process.env.TEST_DATABASE_URL ? await createTestDatabase() : undefined;
    cluster = await startCluster(database);
  });
  afterAll(async () => {
    await cluster?.close();
    await database?.drop();
  });

  function running(): Cluster {
    if (!cluster) throw new Error('the cluster did not start');
    return cluster;
  }

  it('is a config nginx accepts, and nginx refuses a broken one (the check can fail)', () => {
    const { directory } = running();
    const broken = join(directory, 'broken.conf');
    writeFileSync(
      broken,
      render(directory, 1, [2]).replace('proxy_pass http://api;', 'proxy_pass http://api'),
    );
    const result = nginxTest(broken);
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/unexpected|invalid|expecting/);
  });

  it('answers the probes of the Kubernetes Deployment through it', async () => {
    const deployment = kubernetesManifests().find(({ document }) => document.kind === 'Deployment');
    const text = JSON.stringify(deployment?.document);
    const paths = [...text.matchAll(/"path":"(\/[a-z]+)"/g)].map((match) => match[1] ?? '');
    expect(new Set(paths)).toEqual(new Set(['/health', '/ready']));
    for (const path of paths) expect((await get(running().port, path)).status, path).toBe(200);
  });

  it('spreads requests over both servers', async () => {
    const { port, servers } = running();
    const ids = Array.from({ length: 20 }, () => randomUUID());
    for (const id of ids) {
      expect((await get(port, '/api/posts?limit=1', { 'x-request-id': id })).status).toBe(200);
    }
    await sleep(200);
    const served = ids.map((id) => whoServed(servers, id)?.index);
    expect(served.filter((index) => index === undefined)).toEqual([]);
    expect(served.filter((index) => index === 0).length).toBeGreaterThanOrEqual(5);
    expect(served.filter((index) => index === 1).length).toBeGreaterThanOrEqual(5);
  });

  it("gives the servers the client's address, not nginx's nor one the client claims", async () => {
    const { port, servers } = running();
    const id = randomUUID();
    // The client is 127.0.0.2; nginx connects to the servers from 127.0.0.1.
    const response = await get(
      port,
      '/api/posts?limit=1',
      { 'x-request-id': id, 'x-forwarded-for': '198.51.100.7' },
      '127.0.0.2',
    );
    expect(response.status).toBe(200);
    await sleep(200);
    expect(whoServed(servers, id)?.remoteAddress).toBe('127.0.0.2');
  });
});

describe.skipIf(!nginxBinary)('the WebSocket through deploy/nginx/nginx.conf', () => {
  let database: TestDatabase | undefined;
  let cluster: Cluster | undefined;

  beforeAll(async () => {
    database = process.env.TEST_DATABASE_URL ? await createTestDatabase() : undefined;
    cluster = await startCluster(database);
  });
  afterAll(async () => {
    await cluster?.close();
    await database?.drop();
  });

  /** The frames of a socket opened through nginx, and a way to wait for the next ones. */
  async function openThrough(port: number) {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/api/live`);
    const frames: Record<string, unknown>[] = [];
    socket.on('message', (data) =>
      frames.push(JSON.parse((data as Buffer).toString('utf8')) as Record<string, unknown>),
    );
    const upgrade = new Promise<Record<string, string | string[] | undefined>>(
      (resolve, reject) => {
        socket.once('upgrade', (response) => resolve(response.headers));
        socket.once('error', reject);
      },
    );
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const answer = async (id: string) => {
      for (let waited = 0; waited < 5000; waited += 20) {
        const frame = frames.find((entry) => entry.id === id);
        if (frame) return frame;
        await sleep(20);
      }
      throw new Error(`no answer to ${id}: ${JSON.stringify(frames)}`);
    };
    return { socket, headers: await upgrade, answer };
  }

  it('upgrades GET /api/live, and the socket answers both ways', async () => {
    if (!cluster) throw new Error('the cluster did not start');
    const { socket, headers, answer } = await openThrough(cluster.port);
    try {
      expect(String(headers.upgrade).toLowerCase()).toBe('websocket');
      socket.send(JSON.stringify({ type: 'subscribe', id: 's', channel: 'posts' }));
      expect(await answer('s')).toEqual({ type: 'subscribed', id: 's', channel: 'posts' });
      socket.send(JSON.stringify({ type: 'ping', id: 'p' }));
      expect(await answer('p')).toEqual({ type: 'pong', id: 'p' });
    } finally {
      socket.close();
    }
  });

  it('leaves a plain GET /api/live (no Upgrade) to the API, which answers its problem', async () => {
    if (!cluster) throw new Error('the cluster did not start');
    const plain = await get(cluster.port, '/api/live');
    expect(plain.status).toBe(400);
    expect(JSON.parse(plain.body)).toMatchObject({ code: 'MALFORMED_REQUEST' });
  });
});

describe.skipIf(!nginxBinary)('a server stopped behind deploy/nginx/nginx.conf', () => {
  let database: TestDatabase | undefined;
  let cluster: Cluster | undefined;

  beforeAll(async () => {
    database = process.env.TEST_DATABASE_URL ? await createTestDatabase() : undefined;
    cluster = await startCluster(database);
  });
  afterAll(async () => {
    await cluster?.close();
    await database?.drop();
  });

  it(
    'loses no request when one server gets SIGTERM during traffic',
    { timeout: 60_000 },
    async () => {
      if (!cluster) throw new Error('the cluster did not start');
      const { port, servers } = cluster;
      const statuses: number[] = [];
      const failures: string[] = [];
      let stop = false;
      // Eight clients, each with its own keep-alive connection to nginx, one request after another.
      const client = async () => {
        while (!stop) {
          try {
            statuses.push((await fetch(`http://127.0.0.1:${port}/api/posts?limit=1`)).status);
          } catch (error) {
            failures.push(String(error));
          }
        }
      };
      const clients = Array.from({ length: 8 }, client);
      // Under way on both servers first.
      for (let waited = 0; statuses.length < 50 && waited < 20_000; waited += 50) {
        await sleep(50);
      }
      const before = statuses.length;
      servers[0].child.kill('SIGTERM');
      const exitCode = await servers[0].exited;
      const atExit = statuses.length;
      await sleep(1000);
      stop = true;
      await Promise.all(clients);

      expect(exitCode).toBe(0);
      expect(failures).toEqual([]);
      expect(statuses.filter((status) => status !== 200)).toEqual([]);
      // Traffic went on before, during and after the shutdown.
      expect(before).toBeGreaterThanOrEqual(50);
      expect(statuses.length - atExit).toBeGreaterThan(0);
      // And after it, the server left does the work.
      expect((await get(port, '/ready')).status).toBe(200);
    },
  );
});
