import { describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../generated/asyncapi.js';
import { createLiveContract, liveError, LiveMessageError } from '../../src/http/live-messages.js';
import { loadAsyncApi } from '../../src/spec.js';

/**
 * The WebSocket's messages against openapi/asyncapi.yaml (generated/asyncapi.json): what a
 * client sends is read into a message or refused with the error frame to answer it with;
 * what the server sends can be checked.
 */

const contract = createLiveContract(loadAsyncApi());
const postId = '9f1c2b3a-4d5e-4f60-8a7b-1c2d3e4f5a6b';
const read = (value: unknown) => contract.readClientMessage(JSON.stringify(value));

/** The error frame a refused frame is answered with. */
function refusal(frame: string | Uint8Array, isBinary = false) {
  const reading = contract.readClientMessage(frame, isBinary);
  if (reading.ok) throw new Error(`${String(frame)} was taken`);
  return reading.error;
}

describe("the client's messages", () => {
  it.each([
    { type: 'auth', token: 'aaa.bbb.ccc' },
    { type: 'auth', id: 'a-1', token: 'aaa.bbb.ccc' },
    { type: 'subscribe', channel: 'posts' },
    { type: 'subscribe', id: '2', channel: 'me' },
    { type: 'subscribe', channel: `posts/${postId}` },
    { type: 'unsubscribe', channel: `posts/${postId}` },
    { type: 'ping' },
    { type: 'ping', id: 'x'.repeat(64) },
  ])('takes %j', (message) => {
    expect(read(message)).toEqual({ ok: true, message });
  });

  it('takes a frame that arrives as bytes of text', () => {
    const frame = new TextEncoder().encode('{"type":"ping","id":"7"}');
    expect(contract.readClientMessage(frame)).toEqual({
      ok: true,
      message: { type: 'ping', id: '7' },
    });
  });

  it.each([
    ['not JSON', '{"type": "ping"', 'The message is not valid JSON.'],
    ['not an object', '["ping"]', 'The message is not a JSON object.'],
    ['null', 'null', 'The message is not a JSON object.'],
  ])('refuses a frame that is %s: MALFORMED_REQUEST', (_, frame, detail) => {
    expect(refusal(frame)).toEqual({
      type: 'error',
      problem: {
        type: '/problems/malformed-request',
        title: 'Malformed request',
        status: 400,
        code: 'MALFORMED_REQUEST',
        detail,
      },
    });
  });

  it('refuses a binary frame: MALFORMED_REQUEST', () => {
    const error = refusal(new TextEncoder().encode('{"type":"ping"}'), true);
    expect(error.problem.code).toBe('MALFORMED_REQUEST');
    expect(error.problem.detail).toBe('Send messages as text frames.');
  });

  it('refuses an undeclared type, naming the declared ones, with the frame’s id', () => {
    expect(refusal(JSON.stringify({ type: 'publish', id: '9', channel: 'posts' }))).toEqual({
      type: 'error',
      id: '9',
      problem: {
        type: '/problems/validation-error',
        title: 'Validation failed',
        status: 400,
        code: 'VALIDATION_ERROR',
        detail: 'The message is not one the client may send.',
        errors: [
          {
            location: 'body',
            pointer: '/type',
            message: 'must be one of auth, subscribe, unsubscribe, ping',
          },
        ],
      },
    });
  });

  it('refuses a message of the server (the client may not send `subscribed`)', () => {
    const error = refusal(JSON.stringify({ type: 'subscribed', channel: 'posts' }));
    expect(error.problem.errors).toEqual([expect.objectContaining({ pointer: '/type' })]);
  });

  it.each([
    [{ type: 'subscribe' }, '/channel', 'is required'],
    [{ type: 'subscribe', channel: 'users' }, '/channel', expect.stringMatching(/^must match/)],
    [
      { type: 'subscribe', channel: `posts/${postId.toUpperCase()}` },
      '/channel',
      expect.any(String),
    ],
    [{ type: 'subscribe', channel: 'posts/not-a-uuid' }, '/channel', expect.any(String)],
    [{ type: 'subscribe', channel: 'posts', extra: 1 }, '/extra', 'is not a known property'],
    [{ type: 'auth' }, '/token', 'is required'],
    [{ type: 'auth', token: 'in the clear' }, '/token', expect.stringMatching(/^must match/)],
    [{ type: 'ping', id: '' }, '/id', expect.any(String)],
    [{ type: 'ping', id: 7 }, '/id', 'must be string'],
  ])('refuses %j: VALIDATION_ERROR at %s', (message, pointer, text) => {
    const error = refusal(JSON.stringify(message));
    expect(error.problem).toMatchObject({ code: 'VALIDATION_ERROR', status: 400 });
    expect(error.problem.errors).toContainEqual({ location: 'body', pointer, message: text });
  });

  it('answers an invalid message with its id when the id itself is valid, else without', () => {
    expect(refusal(JSON.stringify({ type: 'subscribe', id: 'q', channel: 'x' })).id).toBe('q');
    expect(refusal(JSON.stringify({ type: 'ping', id: 7 }))).not.toHaveProperty('id');
  });
});

describe("the server's messages", () => {
  const post = {
    id: postId,
    title: 'Hello',
    content: 'The first post.',
    slug: 'hello',
    authorId: '0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10',
    author: {
      id: '0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10',
      username: 'ada',
      firstName: null,
      lastName: null,
    },
    viewCount: 0,
    publishedAt: '2026-01-21T08:15:00.000Z',
    createdAt: '2026-01-20T10:00:00.000Z',
    updatedAt: '2026-01-21T08:15:00.000Z',
  };
  const updated = { type: 'post.updated', timestamp: '2026-01-22T09:00:00.000Z', data: post };
  const check = (message: unknown) => () => contract.checkServerMessage(message as ServerMessage);

  it.each<ServerMessage>([
    { type: 'pong' },
    { type: 'subscribed', id: '1', channel: 'posts' },
    { type: 'unsubscribed', channel: `posts/${postId}` },
    liveError('NOT_FOUND', 'There is no such post.', '3'),
    liveError('RATE_LIMITED', 'At most 100 subscriptions.'),
    { type: 'event', channel: `posts/${postId}`, event: updated as never },
    {
      type: 'event',
      channel: 'me',
      event: {
        type: 'session.ended',
        timestamp: '2026-01-24T18:00:00.000Z',
        data: { sessionId: postId, reason: 'logout', current: false },
      },
    },
  ])('takes %j', (message) => {
    expect(check(message)).not.toThrow();
  });

  it.each([
    ['an undeclared type', { type: 'hello' }],
    [
      'a whole post on `posts` (it takes summaries)',
      { type: 'event', channel: 'posts', event: updated },
    ],
    ['an event of `posts/{id}` on `me`', { type: 'event', channel: 'me', event: updated }],
    ['a channel that is no channel', { type: 'event', channel: 'posts/1', event: updated }],
    [
      'an undeclared session end',
      {
        type: 'event',
        channel: 'me',
        event: {
          type: 'session.ended',
          timestamp: '2026-01-24T18:00:00.000Z',
          data: { sessionId: postId, reason: 'boredom', current: false },
        },
      },
    ],
    [
      'a problem with an unknown code',
      { type: 'error', problem: { ...liveError('NOT_FOUND', 'x').problem, code: 'NOPE' } },
    ],
  ])('refuses %s', (_, message) => {
    expect(check(message)).toThrow(LiveMessageError);
  });

  it('names the offending value of the schema the message came nearest to', () => {
    const draft = { ...updated, data: { ...post, viewCount: -1 } };
    expect(check({ type: 'event', channel: `posts/${postId}`, event: draft })).toThrow(
      /\/event\/data\/viewCount must be >= 0/,
    );
  });
});

describe('the close codes and limits', () => {
  it('are the document’s', () => {
    expect(contract.closeCodes).toMatchObject({ goingAway: 1001, sessionEnded: 4001 });
    expect(contract.limits.maxMessageBytes).toBe(4096);
    expect(contract.clientTypes).toEqual(['auth', 'subscribe', 'unsubscribe', 'ping']);
    expect([...contract.serverTypes].sort()).toEqual([
      'authenticated',
      'error',
      'event',
      'pong',
      'subscribed',
      'unsubscribed',
    ]);
  });
});
