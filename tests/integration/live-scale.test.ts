import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { TEST_JWT_SECRET, caller, signUpAndLogin, useTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { liveUrlOf, openLiveClient, type LiveTestClient } from '../helpers/live.js';
import { SHARED_REDIS_URL, deleteKeys, uniquePrefix } from '../helpers/redis.js';

/**
 * GET /api/live across instances and at its limits: an event committed through one
 * instance reaches the sockets of another (Redis pub/sub, or PostgreSQL's NOTIFY); the
 * limits per address and per connection; a slow consumer dropped while the others keep
 * getting their frames; a silent peer cut off; sockets closed with 1001 at shutdown.
 */

type Frame = Record<string, unknown> & {
  type: string;
  event?: { type: string; data: Record<string, unknown> };
  problem?: { code: string };
};

const METRICS_TOKEN = 'live-metrics-token-'.padEnd(48, 'm');

const baseEnv = (db: TestDatabase, env: Record<string, string>) => ({
  NODE_ENV: 'test',
  LOG_LEVEL: 'silent',
  JWT_SECRET: TEST_JWT_SECRET,
  RATE_LIMIT_AUTH_MAX: '100000',
  MAX_EVENT_LOOP_DELAY_MS: '0',
  EMAIL_POLL_INTERVAL: '0',
  DATABASE_URL: db.url,
  ...env,
});

const publishedOn = (frame: Record<string, unknown>, id: string) =>
  frame.type === 'event' &&
  (frame as Frame).event?.type === 'post.published' &&
  (frame as Frame).event?.data.id === id;

describe.each([
  { bus: 'postgres', env: (): Record<string, string> => ({}) },
  { bus: 'redis', env: (): Record<string, string> => ({ REDIS_URL: SHARED_REDIS_URL }) },
])('two API instances on the $bus bus', ({ bus, env }) => {
  let db: TestDatabase;
  let writer: FastifyInstance;
  let reader: FastifyInstance;
  const prefix = uniquePrefix();
  const clients: LiveTestClient[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    const shared = { ...env(), ...(bus === 'redis' ? { REDIS_KEY_PREFIX: prefix } : {}) };
    // The writer runs the jobs (the relay publishes on the bus); the reader only serves.
    writer = await buildApp(loadConfig(baseEnv(db, { ...shared, JOBS_IN_PROCESS: 'true' })));
    reader = await buildApp(loadConfig(baseEnv(db, { ...shared, JOBS_IN_PROCESS: 'false' })));
    await Promise.all([writer.ready(), reader.ready()]);
  }, 60_000);

  afterAll(async () => {
    for (const client of clients) client.close();
    await Promise.all([writer?.close(), reader?.close()]);
    await db?.drop();
    if (bus === 'redis') await deleteKeys(SHARED_REDIS_URL, prefix);
  });

  it('sends a post published through one instance to the sockets of the other', async () => {
    const onReader = await openLiveClient(await liveUrlOf(reader));
    const onWriter = await openLiveClient(await liveUrlOf(writer));
    clients.push(onReader, onWriter);
    for (const client of [onReader, onWriter])
      await client.ask({ type: 'subscribe', channel: 'posts' });
    const call = caller({ inject: (options) => writer.inject(options) });
    const author = await signUpAndLogin({
      inject: (options: never) => writer.inject(options),
    } as never);
    const headers = { authorization: `Bearer ${author.token}` };
    const created = await call('POST', '/api/posts', headers, {
      title: `Across instances on ${bus}`,
      content: 'Sent to every instance.',
    });
    const { id } = created.json<{ id: string }>();
    expect((await call('POST', `/api/posts/${id}/publish`, headers)).statusCode).toBe(200);
    for (const client of [onReader, onWriter]) await client.next((frame) => publishedOn(frame, id));
  });
});

describe('the limits of GET /api/live', () => {
  const t = useTestApp({
    JOBS_IN_PROCESS: 'true',
    EMAIL_POLL_INTERVAL: '0',
    LIVE_MAX_CONNECTIONS_PER_ADDRESS: '3',
    LIVE_MAX_SUBSCRIPTIONS: '2',
    LIVE_SEND_BUFFER_BYTES: '65536',
    METRICS_TOKEN,
  });
  const call = caller(t);
  let url = '';
  const open: LiveTestClient[] = [];
  const connect = async () => {
    const client = await openLiveClient(url);
    open.push(client);
    return client;
  };
  const scrape = async () =>
    (await call('GET', '/metrics', { authorization: `Bearer ${METRICS_TOKEN}` })).body;

  beforeAll(async () => {
    url = await liveUrlOf(t.app);
  });
  afterEach(async () => {
    const closing = open.splice(0);
    for (const client of closing) client.close();
    await Promise.all(closing.map((client) => client.closed));
  });

  it('closes a connection over the limit of its address with 4008, and takes one again once one closed', async () => {
    const first = await connect();
    await connect();
    await connect();
    const fourth = await connect();
    expect((await fourth.closed).code).toBe(4008);
    first.close();
    await first.closed;
    const again = await connect();
    expect(await again.ask({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });

  it('refuses a subscription over the limit of a connection with RATE_LIMITED', async () => {
    const author = await signUpAndLogin(t);
    const client = await connect();
    await client.ask({ type: 'auth', token: author.token });
    await client.ask({ type: 'subscribe', channel: 'posts' });
    await client.ask({ type: 'subscribe', channel: 'me' });
    // The same channel again is no new subscription.
    expect(await client.ask({ type: 'subscribe', channel: 'me' })).toMatchObject({
      type: 'subscribed',
    });
    const refused = await client.ask<Frame>({
      type: 'subscribe',
      channel: `posts/${crypto.randomUUID()}`,
    });
    expect(refused.problem).toMatchObject({ code: 'RATE_LIMITED', status: 429 });
    await client.ask({ type: 'unsubscribe', channel: 'me' });
    const author2 = await signUpAndLogin(t);
    const created = await call(
      'POST',
      '/api/posts',
      { authorization: `Bearer ${author2.token}` },
      { title: 'Limit', content: 'x' },
    );
    const { id } = created.json<{ id: string }>();
    await call('POST', `/api/posts/${id}/publish`, { authorization: `Bearer ${author2.token}` });
    expect(await client.ask({ type: 'subscribe', channel: `posts/${id}` })).toMatchObject({
      type: 'subscribed',
    });
  });

  it('drops a consumer that stops reading with 4009 while another gets every frame', async () => {
    const author = await signUpAndLogin(t);
    const headers = { authorization: `Bearer ${author.token}` };
    const created = await call('POST', '/api/posts', headers, {
      title: 'Big',
      content: 'Words of a long post. '.repeat(4000),
    });
    const { id } = created.json<{ id: string }>();
    await call('POST', `/api/posts/${id}/publish`, headers);

    const slow = await connect();
    const fast = await connect();
    for (const client of [slow, fast])
      await client.ask({ type: 'subscribe', channel: `posts/${id}` });
    // The slow one stops reading its socket: frames pile up in the kernel, then the server.
    (slow.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const edits = 60;
    for (let i = 0; i < edits; i += 1) {
      const edited = await call('PATCH', `/api/posts/${id}`, headers, {
        title: `Big, edit ${i}`,
      });
      expect(edited.statusCode, edited.body).toBe(200);
    }
    for (let i = 0; i < edits; i += 1) {
      await fast.next(
        (frame) =>
          (frame as Frame).event?.type === 'post.updated' &&
          (frame as Frame).event?.data.title === `Big, edit ${i}`,
        10_000,
      );
    }
    expect(await scrape()).toMatch(/live_connections_dropped_total\{reason="slow-consumer"\} 1/);
    (slow.socket as unknown as { _socket: { resume(): void } })._socket.resume();
    const { code } = await slow.closed;
    // 4009 when its close frame got through after what was buffered; 1006 when it was cut.
    expect([4009, 1006]).toContain(code);
  });
});

describe('the heartbeat of GET /api/live', () => {
  const t = useTestApp({ LIVE_HEARTBEAT_INTERVAL: '1s', METRICS_TOKEN });
  const scrape = async () =>
    (
      await t.inject({
        method: 'GET',
        url: '/metrics',
        headers: { authorization: `Bearer ${METRICS_TOKEN}` },
      })
    ).body;

  it('cuts off a peer that does not answer pings, and keeps one that does', async () => {
    const url = await liveUrlOf(t.app);
    const silent = await openLiveClient(url);
    const answering = await openLiveClient(url);
    (silent.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    while (!/live_connections_dropped_total\{reason="heartbeat"\} 1/.test(await scrape()))
      await new Promise((resolve) => setTimeout(resolve, 200));
    (silent.socket as unknown as { _socket: { resume(): void } })._socket.resume();
    expect((await silent.closed).code).toBe(1006);
    // Pinged twice since: it answered, it is still there.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(await answering.ask({ type: 'ping' })).toMatchObject({ type: 'pong' });
    answering.close();
  });
});

describe('shutting down with sockets open', () => {
  it('closes every socket with 1001 (going away)', async () => {
    const db = await createTestDatabase();
    const app = await buildApp(loadConfig(baseEnv(db, {})));
    try {
      await app.ready();
      const url = await liveUrlOf(app);
      const clients = await Promise.all([openLiveClient(url), openLiveClient(url)]);
      await clients[0].ask({ type: 'subscribe', channel: 'posts' });
      await app.close();
      for (const client of clients) expect((await client.closed).code).toBe(1001);
    } finally {
      await app.close();
      await db.drop();
    }
  });
});
