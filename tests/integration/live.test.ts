import { sql } from 'drizzle-orm';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { caller, sessionIdOf, signUpAndLogin, useTestApp } from '../helpers/app.js';
import { openLiveClient, liveUrlOf, type LiveTestClient } from '../helpers/live.js';

/**
 * GET /api/live on a real port (openapi/asyncapi.yaml): the events of each channel as
 * the REST API's changes make them (relayed from the events table through the live bus,
 * here PostgreSQL's NOTIFY), who may subscribe to what, and the error frames.
 */

type Frame = Record<string, unknown> & {
  type: string;
  channel?: string;
  event?: { type: string; data: Record<string, unknown> };
  problem?: { code: string; status: number; errors?: unknown[] };
};

describe('GET /api/live', () => {
  const t = useTestApp({ JOBS_IN_PROCESS: 'true', EMAIL_POLL_INTERVAL: '0' });
  const call = caller(t);
  let url = '';
  const open: LiveTestClient[] = [];
  const connect = async () => {
    const client = await openLiveClient(url);
    open.push(client);
    return client;
  };

  beforeAll(async () => {
    url = await liveUrlOf(t.app);
  });
  afterEach(() => {
    for (const client of open.splice(0)) client.close();
  });

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const newPost = async (token: string, title = 'Live post') => {
    const created = await call('POST', '/api/posts', bearer(token), {
      title,
      content: `The content of ${title}.`,
    });
    expect(created.statusCode, created.body).toBe(201);
    return created.json<{ id: string; slug: string }>();
  };
  const publish = async (token: string, id: string) => {
    const published = await call('POST', `/api/posts/${id}/publish`, bearer(token));
    expect(published.statusCode, published.body).toBe(200);
    return published.json<Record<string, unknown>>();
  };
  const eventOf = (type: string, id: string) => (frame: Record<string, unknown>) =>
    frame.type === 'event' &&
    (frame as Frame).event?.type === type &&
    ((frame as Frame).event?.data.id === id || type === 'post.viewed');

  it('sends anybody on `posts` a post as it is published, changed, unpublished and deleted', async () => {
    const author = await signUpAndLogin(t);
    const client = await connect();
    expect(await client.ask({ type: 'subscribe', channel: 'posts' })).toMatchObject({
      type: 'subscribed',
      channel: 'posts',
    });
    const { id } = await newPost(author.token, 'Published live');
    const post = await publish(author.token, id);
    const published = await client.next<Frame>(eventOf('post.published', id));
    expect(published.channel).toBe('posts');
    // The summary, as listPosts shows it: an excerpt, no content.
    const listed = await call('GET', '/api/posts?limit=1', {});
    const [summary] = listed.json<{ items: Record<string, unknown>[] }>().items;
    expect(published.event?.data).toEqual(summary);
    expect(published.event?.data).not.toHaveProperty('content');
    expect(published.event?.data.updatedAt).toBe(post.updatedAt);

    const changed = await call('PATCH', `/api/posts/${id}`, bearer(author.token), {
      title: 'Published live, changed',
    });
    expect(changed.statusCode, changed.body).toBe(200);
    const updated = await client.next<Frame>(eventOf('post.updated', id));
    expect(updated.event?.data.title).toBe('Published live, changed');

    await call('POST', `/api/posts/${id}/unpublish`, bearer(author.token));
    const unpublished = await client.next<Frame>(eventOf('post.unpublished', id));
    expect(unpublished.event?.data).toMatchObject({ id, authorId: author.user.id });

    await publish(author.token, id);
    await client.next(eventOf('post.published', id));
    const deleted = await call('DELETE', `/api/posts/${id}`, bearer(author.token));
    expect(deleted.statusCode).toBe(204);
    const gone = await client.next<Frame>(eventOf('post.deleted', id));
    expect(gone.event?.data).toMatchObject({ id, authorId: author.user.id });
  });

  it('sends `posts/{id}` the whole post, its view count at most once a second, and ends at its deletion', async () => {
    const author = await signUpAndLogin(t);
    const { id } = await newPost(author.token, 'One post');
    await publish(author.token, id);
    const client = await connect();
    await client.ask({ type: 'subscribe', channel: `posts/${id}` });

    await call('PATCH', `/api/posts/${id}`, bearer(author.token), { content: 'Whole content.' });
    const updated = await client.next<Frame>(eventOf('post.updated', id));
    expect(updated.channel).toBe(`posts/${id}`);
    const read = await call('GET', `/api/posts/${id}`, {});
    expect(updated.event?.data).toEqual(read.json());

    const views = 5;
    for (let i = 0; i < views; i += 1) {
      const viewed = await call('POST', `/api/posts/${id}/views`, {});
      expect(viewed.statusCode, viewed.body).toBe(200);
    }
    const viewed = await client.next<Frame>(
      (frame) =>
        (frame as Frame).event?.type === 'post.viewed' &&
        (frame as Frame).event?.data.viewCount === views,
      10_000,
    );
    expect(viewed.channel).toBe(`posts/${id}`);
    // At most once a second: five views within a moment are one or two frames, not five.
    const viewFrames = client
      .pending()
      .filter((frame) => (frame as Frame).event?.type === 'post.viewed');
    expect(viewFrames.length).toBeLessThanOrEqual(1);

    await call('DELETE', `/api/posts/${id}`, bearer(author.token));
    await client.next(eventOf('post.deleted', id));
    expect(await client.next((frame) => frame.type === 'unsubscribed')).toEqual({
      type: 'unsubscribed',
      channel: `posts/${id}`,
    });
  });

  it('sends the author subscribed to a draft its publication, then its views', async () => {
    const author = await signUpAndLogin(t);
    const { id } = await newPost(author.token, 'Draft first');
    const client = await connect();
    await client.ask({ type: 'auth', token: author.token });
    await client.ask({ type: 'subscribe', channel: `posts/${id}` });
    await publish(author.token, id);
    await client.next(eventOf('post.published', id));
    await call('POST', `/api/posts/${id}/views`, {});
    const viewed = await client.next<Frame>(eventOf('post.viewed', id), 10_000);
    expect(viewed.event?.data).toEqual({ viewCount: 1 });
  });

  it('sends an event announced twice on the bus once', async () => {
    const author = await signUpAndLogin(t);
    const client = await connect();
    await client.ask({ type: 'subscribe', channel: 'posts' });
    const { id } = await newPost(author.token, 'Announced twice');
    await publish(author.token, id);
    await client.next(eventOf('post.published', id));
    const [row] = await t.db.sql(sql`select id from events where subject_id = ${id}`);
    const announcement = JSON.stringify({ events: [row!.id] });
    await t.db.sql(sql`select pg_notify('live_events', ${announcement})`);
    await t.db.sql(sql`select pg_notify('live_events', ${announcement})`);
    const marker = await newPost(author.token, 'After the repeats');
    await publish(author.token, marker.id);
    await client.next(eventOf('post.published', marker.id));
    expect(client.pending().filter(eventOf('post.published', id))).toEqual([]);
  });

  it('never sends a draft to anybody but its author and admins', async () => {
    const author = await signUpAndLogin(t);
    const other = await signUpAndLogin(t);
    const draft = await newPost(author.token, 'A draft');
    const anonymous = await connect();
    const stranger = await connect();
    await stranger.ask({ type: 'auth', token: other.token });
    const owner = await connect();
    await owner.ask({ type: 'auth', token: author.token });

    // Not found for those who may not see it, as getPost answers them.
    for (const client of [anonymous, stranger]) {
      const refused = await client.ask<Frame>({ type: 'subscribe', channel: `posts/${draft.id}` });
      expect(refused).toMatchObject({ type: 'error', problem: { code: 'NOT_FOUND', status: 404 } });
      await client.ask({ type: 'subscribe', channel: 'posts' });
    }
    expect(await owner.ask({ type: 'subscribe', channel: `posts/${draft.id}` })).toMatchObject({
      type: 'subscribed',
    });
    await owner.ask({ type: 'subscribe', channel: 'posts' });

    // Changes to the draft send nothing; then a published post comes through to all.
    await call('PATCH', `/api/posts/${draft.id}`, bearer(author.token), { title: 'Still a draft' });
    const marker = await newPost(author.token, 'Marker');
    await publish(author.token, marker.id);
    for (const client of [anonymous, stranger, owner]) {
      await client.next(eventOf('post.published', marker.id));
      expect(JSON.stringify(client.pending())).not.toContain(draft.id);
    }
  });

  it('authenticates with an auth message and refuses `me` to anonymous and forged tokens', async () => {
    const user = await signUpAndLogin(t);
    const client = await connect();
    const anonymousMe = await client.ask<Frame>({ type: 'subscribe', channel: 'me' });
    expect(anonymousMe.problem).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });

    const forged = `${user.token.slice(0, -4)}AAAA`;
    const second = await connect();
    const refused = await second.ask<Frame>({ type: 'auth', token: forged });
    expect(refused.problem).toMatchObject({ code: 'UNAUTHORIZED' });
    // Still open, still anonymous.
    expect((await second.ask<Frame>({ type: 'subscribe', channel: 'me' })).problem?.code).toBe(
      'UNAUTHORIZED',
    );

    const third = await connect();
    expect(await third.ask({ type: 'auth', token: user.token })).toMatchObject({
      type: 'authenticated',
      userId: user.user.id,
      role: 'user',
      sessionId: user.sessionId,
    });
    expect(await third.ask({ type: 'subscribe', channel: 'me' })).toMatchObject({
      type: 'subscribed',
      channel: 'me',
    });
    const again = await third.ask<Frame>({ type: 'auth', token: user.token });
    expect(again.problem?.code).toBe('CONFLICT');
  });

  it('closes the socket with 4001 within a second of its session ending (logout)', async () => {
    const user = await signUpAndLogin(t);
    const client = await connect();
    await client.ask({ type: 'auth', token: user.token });
    await client.ask({ type: 'subscribe', channel: 'me' });
    const loggedOut = await call('POST', '/api/auth/logout', bearer(user.token));
    expect(loggedOut.statusCode, loggedOut.body).toBe(204);
    const at = Date.now();
    const ended = await client.next<Frame>((frame) => frame.type === 'event', 2000);
    expect(ended.event).toMatchObject({
      type: 'session.ended',
      data: { sessionId: user.sessionId, reason: 'logout', current: true },
    });
    expect(await client.closed).toEqual({ code: 4001, reason: 'the session ended' });
    expect(Date.now() - at).toBeLessThan(1000);
  });

  it("tells `me` when another session of the account ends, and closes that session's socket with its reason", async () => {
    const user = await signUpAndLogin(t);
    const login = await call(
      'POST',
      '/api/auth/login',
      {},
      {
        email: user.user.email,
        password: user.password,
      },
    );
    const other = login.json<{ accessToken: string }>().accessToken;
    const otherSession = sessionIdOf(other);
    const mine = await connect();
    await mine.ask({ type: 'auth', token: user.token });
    await mine.ask({ type: 'subscribe', channel: 'me' });
    const theirs = await connect();
    await theirs.ask({ type: 'auth', token: other });
    await theirs.ask({ type: 'subscribe', channel: 'me' });

    const revoked = await call('DELETE', `/api/auth/sessions/${otherSession}`, bearer(user.token));
    expect(revoked.statusCode, revoked.body).toBe(204);
    const told = await mine.next<Frame>((frame) => frame.type === 'event', 5000);
    expect(told.event).toMatchObject({
      type: 'session.ended',
      data: { sessionId: otherSession, reason: 'revoked', current: false },
    });
    const own = await theirs.next<Frame>((frame) => frame.type === 'event', 5000);
    expect(own.event?.data).toEqual({ sessionId: otherSession, reason: 'revoked', current: true });
    expect((await theirs.closed).code).toBe(4001);
    // Still open: only the revoked session's socket closed.
    expect(await mine.ask({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });

  it('tells `me` of a role change and of a verified email address', async () => {
    const user = await signUpAndLogin(t);
    const client = await connect();
    await client.ask({ type: 'auth', token: user.token });
    await client.ask({ type: 'subscribe', channel: 'me' });
    await t.db.sql(
      sql`update users set role = 'admin', updated_at = now() where id = ${user.user.id}`,
    );
    const promoted = await client.next<Frame>((frame) => frame.type === 'event', 5000);
    expect(promoted.event).toMatchObject({ type: 'user.role-changed', data: { role: 'admin' } });
    const me = await call('GET', '/api/auth/me', bearer(user.token));
    expect(promoted.event?.data).toEqual(me.json());
    await t.db.sql(
      sql`update users set email_verified = true, updated_at = now() where id = ${user.user.id}`,
    );
    const verified = await client.next<Frame>((frame) => frame.type === 'event', 5000);
    expect(verified.event).toMatchObject({
      type: 'user.email-verified',
      data: { emailVerified: true, role: 'admin' },
    });
  });

  it('closes the socket of a session an admin revoked by disabling its account', async () => {
    const user = await signUpAndLogin(t);
    const client = await connect();
    await client.ask({ type: 'auth', token: user.token });
    await t.db.sql(sql`update users set is_active = false where id = ${user.user.id}`);
    expect((await client.closed).code).toBe(4001);
  });

  it('answers a message that breaks the contract with an error frame and stays open', async () => {
    const client = await connect();
    client.send('not json');
    expect((await client.next<Frame>()).problem).toMatchObject({
      code: 'MALFORMED_REQUEST',
      status: 400,
    });
    const invalid = await client.ask<Frame>({ type: 'subscribe', channel: 'drafts' });
    expect(invalid.problem).toMatchObject({ code: 'VALIDATION_ERROR', status: 400 });
    expect(invalid.problem?.errors).toEqual([
      expect.objectContaining({ location: 'body', pointer: '/channel' }),
    ]);
    const unknown = await client.ask<Frame>({ type: 'shout' });
    expect(unknown.problem?.code).toBe('VALIDATION_ERROR');
    expect(await client.ask({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });

  it('answers every message of a burst, refusing those past 32 waiting with RATE_LIMITED, and stays open', async () => {
    const client = await connect();
    const burst = 200;
    for (let i = 0; i < burst; i += 1)
      client.send({ type: 'subscribe', id: `b${i}`, channel: `posts/${crypto.randomUUID()}` });
    const answers: Frame[] = [];
    for (let i = 0; i < burst; i += 1)
      answers.push(await client.next<Frame>((frame) => String(frame.id).startsWith('b')));
    const codes = answers.map((answer) => answer.problem?.code);
    expect(new Set(codes)).toEqual(new Set(['NOT_FOUND', 'RATE_LIMITED']));
    expect(codes.filter((code) => code === 'NOT_FOUND').length).toBeGreaterThanOrEqual(32);
    expect(await client.ask({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });

  it('closes a socket that sends a frame over the size limit with 1009', async () => {
    const client = await connect();
    client.send({ type: 'ping', id: 'x'.repeat(5000) });
    expect((await client.closed).code).toBe(1009);
  });

  it('answers a plain GET with a problem', async () => {
    const response = await t.inject({ method: 'GET', url: '/api/live' });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toContain('application/problem+json');
  });
});
