import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { openLiveClient } from '../helpers/live.js';
import { demoPassword, kill, logIn, startedServer, type Server } from './processes.js';

/**
 * SIGTERM while the server is busy: what was in flight is answered, what comes after is
 * turned away, and the process is gone soon after the last answer.
 */

const inFlight = 200;

/** A request written up to its last header line: the connection is busy, not idle. */
async function openRequest(base: string, path: string): Promise<Socket> {
  const { hostname, port } = new URL(base);
  const socket = connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve).once('error', reject);
  });
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: application/json\r\n`);
  return socket;
}

/** Ends the request's headers and reads the whole answer (the server closes the socket). */
async function finishRequest(socket: Socket) {
  let raw = '';
  socket.on('data', (chunk: Buffer) => (raw += chunk.toString()));
  const ended = new Promise<void>((resolve, reject) => {
    socket.once('close', () => resolve()).once('error', reject);
  });
  socket.write('\r\n');
  await ended;
  const [head = '', body = ''] = raw.split('\r\n\r\n', 2);
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const headers = Object.fromEntries(
    headerLines.map((line) => {
      const at = line.indexOf(':');
      return [line.slice(0, at).trim().toLowerCase(), line.slice(at + 1).trim()];
    }),
  );
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

/**
 * A GET through `agent` (false: a connection of its own): `connected` once its connection
 * is established, `answer` with its whole answer.
 */
function get(url: string, headers: Record<string, string>, agent: Agent | false) {
  let connected!: () => void;
  const connecting = new Promise<void>((resolve) => (connected = resolve));
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    request(url, { headers, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    })
      .on('socket', (socket) => {
        if (socket.connecting) socket.once('connect', connected);
        else connected();
      })
      .on('error', reject)
      .end();
  });
  return { connected: connecting, answer };
}

/** Whether a new connection is refused (the server stopped listening). */
async function refusesConnections(base: string): Promise<boolean> {
  try {
    await get(`${base}/health`, {}, false).answer;
    return false;
  } catch (error) {
    return (error as { code?: string }).code === 'ECONNREFUSED';
  }
}

describe('the server process shutting down under load', () => {
  let db: TestDatabase | undefined;
  let dataDir: string;
  let server: Server | undefined;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'api-e2e-shutdown-'));
    db = process.env.TEST_DATABASE_URL ? await createTestDatabase() : undefined;
  });

  /** The test database, or an embedded one of the test's own. */
  let servers = 0;
  const database = (): Record<string, string> =>
    db?.url ? { DATABASE_URL: db.url } : { DATA_DIR: join(dataDir, String(++servers)) };

  afterEach(async () => {
    await kill(server);
  });

  afterAll(async () => {
    await db?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it(`answers all ${inFlight} requests in flight at SIGTERM, turns /ready 503 at once, refuses new connections and exits 0`, async () => {
    server = await startedServer({
      ...database(),
      // Longer than the test: an exit that waited for it would not be a graceful one.
      SHUTDOWN_TIMEOUT: '60s',
    });
    const { base } = server;

    // An author with drafts: listing them checks the session and reads the database.
    const email = `shutdown@example.com`;
    const created = await fetch(`${base}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: demoPassword, username: 'shutdown_user' }),
    });
    expect(created.status).toBe(201);
    const { accessToken } = (await (await logIn(base, email)).json()) as { accessToken: string };
    const auth = { authorization: `Bearer ${accessToken}` };
    const drafts = Array.from({ length: 40 }, (_, i) =>
      fetch(`${base}/api/posts`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ title: `Draft ${i}`, content: 'Some words. '.repeat(50) }),
      }),
    );
    for (const draft of await Promise.all(drafts)) expect(draft.status).toBe(201);

    // Every request on a connection of its own, kept alive afterwards (the client's default).
    const clients = new Agent({ keepAlive: true, maxSockets: inFlight, timeout: 60_000 });
    const readiness = await openRequest(base, '/ready');
    let signalled = false;
    let answeredAfterSignal = 0;
    const sent = Array.from({ length: inFlight }, () =>
      get(`${base}/api/posts?status=draft&limit=100`, auth, clients),
    );
    const requests = sent.map(async ({ answer }) => {
      try {
        const res = await answer;
        if (signalled) answeredAfterSignal++;
        const { items } = JSON.parse(res.body) as { items?: unknown[] };
        return { status: res.status, items: items?.length };
      } catch (error) {
        return { error: (error as { code?: string }).code };
      }
    });

    // Every connection is established: one more, answered, means the server has accepted
    // them all (a connection it has not accepted yet when it stops listening is refused,
    // rightly, and its request was never in flight). Their requests are on their way or
    // waiting in the server.
    await Promise.all(sent.map(({ connected }) => connected));
    expect((await get(`${base}/health`, {}, false).answer).status).toBe(200);
    const exited = server.exited;
    server.child.kill('SIGTERM');
    signalled = true;
    const signalledAt = performance.now();

    // The server stops listening, and then /ready, on a connection it had, says 503.
    while (!(await refusesConnections(base))) await sleep(5);
    const ready = await finishRequest(readiness);
    const answers = await Promise.all(requests);
    const code = await exited;
    const exitMs = performance.now() - signalledAt;
    clients.destroy();
    console.info(
      `shutdown: ${answers.filter((answer) => answer.status === 200).length} of ${inFlight} answered 200, ${answeredAfterSignal} after SIGTERM; exit ${code} ${Math.round(exitMs)} ms after it`,
    );

    expect.soft(ready.status).toBe(503);
    expect.soft(ready.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect.soft(ready.headers.connection).toBe('close');
    expect.soft(JSON.parse(ready.body)).toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE' });
    expect
      .soft(answers)
      .toEqual(Array.from({ length: inFlight }, () => ({ status: 200, items: 40 })));
    // The signal did come while the server was busy.
    expect.soft(answeredAfterSignal).toBeGreaterThan(0);
    expect.soft(code).toBe(0);
    expect(exitMs).toBeLessThan(2000);
  }, 60_000);

  it('cuts the connections still busy after SHUTDOWN_TIMEOUT, then exits 0', async () => {
    server = await startedServer({
      ...database(),
      SHUTDOWN_TIMEOUT: '1s',
    });
    // A request that never ends (its headers are not finished; HEADERS_TIMEOUT is 10 s).
    const busy = await openRequest(server.base, '/health');
    let received = '';
    busy.on('data', (chunk: Buffer) => (received += chunk.toString()));
    const cut = new Promise<void>((resolve) => busy.once('close', () => resolve()));
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    await cut;
    expect(received).toBe('');
  }, 60_000);

  it('closes its WebSockets with 1001 at SIGTERM, even one that never answers, and exits 0', async () => {
    server = await startedServer({ ...database(), SHUTDOWN_TIMEOUT: '60s' });
    const url = `${server.base.replace('http', 'ws')}/api/live`;
    const clients = await Promise.all([openLiveClient(url), openLiveClient(url)]);
    for (const client of clients) await client.ask({ type: 'subscribe', channel: 'posts' });
    // A third stops reading: its close frame is never answered, it is cut off.
    const deaf = await openLiveClient(url);
    (deaf.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const signalledAt = performance.now();
    server.child.kill('SIGTERM');
    for (const client of clients) expect((await client.closed).code).toBe(1001);
    expect(await server.exited).toBe(0);
    // Within the close timeout (5 s), not SHUTDOWN_TIMEOUT's 60.
    expect(performance.now() - signalledAt).toBeLessThan(15_000);
    deaf.close();
  }, 60_000);

  it('exits at once, with 1, on a second signal while it waits for requests in flight', async () => {
    server = await startedServer({
      ...database(),
      SHUTDOWN_TIMEOUT: '60s',
    });
    const busy = await openRequest(server.base, '/health');
    server.child.kill('SIGTERM');
    const firstAt = performance.now();
    while (!(await refusesConnections(server.base))) await sleep(5);
    // A second signal within a second is the same one passed on (npm), not a second one.
    await sleep(Math.max(0, 1100 - (performance.now() - firstAt)));
    server.child.kill('SIGINT');
    const signalledAt = performance.now();
    expect(await server.exited).toBe(1);
    // At once: not after the busy request, held far longer than this (SHUTDOWN_TIMEOUT).
    expect(performance.now() - signalledAt).toBeLessThan(5000);
    busy.destroy();
  }, 60_000);
});
