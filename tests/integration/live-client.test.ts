import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { parse as parseYaml } from 'yaml';
import {
  createLiveClient,
  LiveError,
  reconnectHints,
  type LiveClient,
  type LiveClientOptions,
  type LiveEvent,
  type LiveStatus,
  type LiveStatusInfo,
} from '../../client/src/index.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { projectRoot } from '../../src/paths.js';
import { caller, signUpAndLogin, TEST_JWT_SECRET, useTestApp } from '../helpers/app.js';
import { liveUrlOf } from '../helpers/live.js';

/**
 * The live client of client/ (client/src/live.ts) against the server on a real port:
 * typed subscriptions, answers and `error` frames, and what it does after each close code
 * of openapi/asyncapi.yaml (reconnecting and subscribing again by itself, or not).
 */

const ENV = { JOBS_IN_PROCESS: 'true', EMAIL_POLL_INTERVAL: '0' };

describe('the live client', () => {
  const t = useTestApp(ENV);
  const call = caller(t);
  let url = '';
  const clients: LiveClient[] = [];
  /** ws's WebSocket, counting the sockets the client opens. */
  let opened = 0;
  class CountedWebSocket extends WebSocket {
    constructor(address: string) {
      super(address);
      opened += 1;
    }
  }

  /** A client with fast back-off, recording its statuses and errors. */
  const connect = (options: Partial<LiveClientOptions> = {}) => {
    const statuses: Array<{ status: LiveStatus } & LiveStatusInfo> = [];
    const errors: LiveError[] = [];
    const client = createLiveClient({
      url,
      WebSocket: CountedWebSocket,
      backoff: { initialMs: 50, maxMs: 400 },
      onStatus: (status, info) => statuses.push({ status, ...info }),
      onError: (error) => errors.push(error),
      ...options,
    });
    clients.push(client);
    const reached = (status: LiveStatus, count = 1) =>
      vi.waitFor(
        () => expect(statuses.filter((seen) => seen.status === status)).toHaveLength(count),
        { timeout: 5000, interval: 20 },
      );
    return { client, statuses, errors, reached };
  };

  beforeAll(async () => {
    url = await liveUrlOf(t.app);
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const publishPost = async (token: string, title: string) => {
    const created = await call('POST', '/api/posts', bearer(token), {
      title,
      content: `The content of ${title}.`,
    });
    expect(created.statusCode, created.body).toBe(201);
    const { id } = created.json<{ id: string }>();
    const published = await call('POST', `/api/posts/${id}/publish`, bearer(token));
    expect(published.statusCode, published.body).toBe(200);
    return id;
  };
  /** Collects a channel's events; `seen(type, id)` waits for one. */
  const collector = <E extends { type: string; data: object }>() => {
    const events: E[] = [];
    const seen = <T extends E['type']>(type: T, id?: string) =>
      vi.waitFor(
        () => {
          const found = events.find(
            (event) =>
              event.type === type &&
              (id === undefined || (event.data as { id?: string }).id === id),
          );
          expect(found, `${type} ${id ?? ''} among ${JSON.stringify(events)}`).toBeDefined();
          return found as Extract<E, { type: T }>;
        },
        { timeout: 5000, interval: 20 },
      );
    return { events, handler: (event: E) => void events.push(event), seen };
  };

  it('states the reconnect hints of the document', () => {
    const document = parseYaml(
      readFileSync(join(projectRoot, 'openapi/asyncapi.yaml'), 'utf8'),
    ) as { 'x-close-codes': Record<string, { code: number; reconnect: string }> };
    const hints = Object.fromEntries(
      Object.values(document['x-close-codes']).map(({ code, reconnect }) => [code, reconnect]),
    );
    expect(reconnectHints).toEqual(hints);
  });

  it('sends a subscription a published post, and answers ping', async () => {
    const author = await signUpAndLogin(t);
    const { client, reached } = connect();
    const posts = collector<LiveEvent<'posts'>>();
    const subscription = client.subscribe('posts', posts.handler);
    await subscription.ready;
    await reached('connected');
    const id = await publishPost(author.token, 'Published to the live client');
    const published = await posts.seen('post.published', id);
    expect(published.data).toMatchObject({ id, title: 'Published to the live client' });
    await client.ping();

    // Unsubscribed: no more events.
    subscription();
    await client.ping(); // the unsubscribe went before it, on the same socket
    const other = await publishPost(author.token, 'Not sent');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(posts.events.filter((event) => event.data.id === other)).toEqual([]);
  });

  it('rejects a refused subscription with its problem and reports it', async () => {
    const { client, errors } = connect();
    const missing = client.subscribe('posts/00000000-0000-4000-8000-000000000000', () => {});
    const error = await missing.ready.then(
      () => null,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(LiveError);
    expect((error as LiveError).problem).toMatchObject({ code: 'NOT_FOUND', status: 404 });
    // `me` needs a token.
    await expect(client.subscribe('me', () => {}).ready).rejects.toMatchObject({
      problem: { code: 'UNAUTHORIZED' },
    });
    expect(errors.map((reported) => reported.problem?.code)).toEqual(['NOT_FOUND', 'UNAUTHORIZED']);
  });

  it('reconnects after the server drops its socket, and subscribes again by itself', async () => {
    const author = await signUpAndLogin(t);
    const { client, statuses, reached } = connect({ token: () => author.token });
    const posts = collector<LiveEvent<'posts'>>();
    const me = collector<LiveEvent<'me'>>();
    client.subscribe('posts', posts.handler);
    await client.subscribe('me', me.handler).ready;
    await reached('connected');
    const before = opened;

    // Dropped without a close frame (1006), as a crashed proxy or a lost network does.
    for (const socket of t.app.websocketServer.clients) socket.terminate();
    await reached('reconnected');
    expect(opened).toBeGreaterThan(before);
    const drop = statuses.find((seen) => seen.status === 'reconnecting');
    expect(drop).toMatchObject({ code: 1006 });
    expect(drop?.retryInMs).toBeGreaterThanOrEqual(25); // 50 ms, less up to half of it
    expect(drop?.retryInMs).toBeLessThanOrEqual(50);

    // Closed by the server with 1011: back-off, then again.
    for (const socket of t.app.websocketServer.clients) socket.close(1011, 'the server failed');
    await reached('reconnected', 2);

    const id = await publishPost(author.token, 'After two drops');
    await posts.seen('post.published', id);
    // Authenticated again before subscribing: `me` is back too. The account's role changes
    // (as an admin would change it; here in the database), and `me` says so.
    await promote(author.user.id);
    expect((await me.seen('user.role-changed')).data).toMatchObject({
      id: author.user.id,
      role: 'admin',
    });
    expect(statuses.map((seen) => seen.status)).toEqual([
      'connecting',
      'connected',
      'reconnecting',
      'reconnected',
      'reconnecting',
      'reconnected',
    ]);
  });

  it('reports a session ended by logout (4001) and does not retry it with the same token', async () => {
    const user = await signUpAndLogin(t);
    let token = user.token;
    const { client, statuses, reached } = connect({ token: () => token });
    const me = collector<LiveEvent<'me'>>();
    await client.subscribe('me', me.handler).ready;
    await reached('connected');
    const before = opened;

    const loggedOut = await call('POST', '/api/auth/logout', bearer(token));
    expect(loggedOut.statusCode, loggedOut.body).toBe(204);
    await reached('session-ended');
    expect((await me.seen('session.ended')).data.current).toBe(true);
    expect(statuses.at(-1)).toMatchObject({ status: 'session-ended', code: 4001 });
    await new Promise((resolve) => setTimeout(resolve, 500)); // 10 back-off steps at 50 ms
    expect(opened, 'no socket opened with the ended session').toBe(before);

    // Logged in again: `reconnect()` authenticates with the new token and subscribes again.
    token = await logIn(user.user.email, user.password);
    client.reconnect();
    await reached('reconnected');
    expect(opened).toBe(before + 1);
    await promote(user.user.id);
    await me.seen('user.role-changed');
  });

  it('reconnects at once after a 4001 when the token source has a new token', async () => {
    const user = await signUpAndLogin(t);
    let token = user.token;
    const { statuses, reached } = connect({ token: () => token });
    await reached('connected');
    // The app logged in again (a new session) before the first one ends.
    token = await logIn(user.user.email, user.password);
    const loggedOut = await call('POST', '/api/auth/logout', bearer(user.token));
    expect(loggedOut.statusCode, loggedOut.body).toBe(204);
    await reached('reconnected');
    expect(statuses.find((seen) => seen.status === 'reconnecting')).toMatchObject({
      code: 4001,
      retryInMs: 0,
    });
  });

  it('reconnects to a server restarted on the same port (1001, then back-off)', async () => {
    const start = async (port: number) => {
      const config = loadConfig({
        NODE_ENV: 'test',
        LOG_LEVEL: 'silent',
        JWT_SECRET: TEST_JWT_SECRET,
        MAX_EVENT_LOOP_DELAY_MS: '0',
        DATABASE_URL: t.db.url,
        ...ENV,
      });
      const app = await buildApp(config);
      await app.listen({ port, host: '127.0.0.1' });
      return app;
    };
    let server: FastifyInstance = await start(0);
    const { port } = server.server.address() as { port: number };
    try {
      const author = await signUpAndLogin(t);
      const { client, statuses, reached } = connect({
        url: `ws://127.0.0.1:${port}/api/live`,
      });
      const posts = collector<LiveEvent<'posts'>>();
      await client.subscribe('posts', posts.handler).ready;

      await server.close(); // goingAway: at once, then back-off while nobody listens
      await vi.waitFor(
        () =>
          expect(
            statuses.filter((seen) => seen.status === 'reconnecting').length,
          ).toBeGreaterThanOrEqual(3),
        { timeout: 5000, interval: 10 },
      );
      server = await start(port);
      await reached('reconnected');
      const drops = statuses.filter((seen) => seen.status === 'reconnecting');
      expect(drops[0]).toMatchObject({ code: 1001, retryInMs: 0 });
      expect(drops[1]).toMatchObject({ code: 1006 });
      // Exponential: 50 ms doubling, less up to half of each for jitter.
      expect(drops[1]!.retryInMs).toBeGreaterThanOrEqual(50);
      expect(drops[2]!.retryInMs).toBeGreaterThanOrEqual(100);
      expect(drops[2]!.retryInMs).toBeLessThanOrEqual(200);

      const id = await publishPost(author.token, 'After a restart');
      await posts.seen('post.published', id);
    } finally {
      await server.close();
    }
  });

  it('stops at close(): no reconnection, and ping refuses', async () => {
    const { client, statuses, reached } = connect();
    await reached('connected');
    const before = opened;
    client.close();
    expect(statuses.at(-1)).toMatchObject({ status: 'closed', code: 1000 });
    await expect(client.ping()).rejects.toBeInstanceOf(LiveError);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(opened).toBe(before);
  });

  const promote = (id: string) => t.db.sql(sql`update users set role = 'admin' where id = ${id}`);
  const logIn = async (email: string, password: string) => {
    const login = await call('POST', '/api/auth/login', {}, { email, password });
    expect(login.statusCode, login.body).toBe(200);
    return login.json<{ accessToken: string }>().accessToken;
  };
});
