/**
 * Compile-time guarantees of the WebSocket's message types (generated/asyncapi.d.ts, from
 * openapi/asyncapi.yaml), checked by `tsc` in `npm run check` (this file is type-checked,
 * never run): each `@ts-expect-error` below must meet an error, or the type check itself
 * fails. A server that sends through `send(message: ServerMessage)` cannot send a message
 * the document does not declare.
 */
import type {
  ClientMessage,
  CloseCode,
  CloseCodes,
  components,
  ServerMessage,
  ServerMessages,
} from '../../generated/asyncapi.js';
import type { webhooks } from '../../generated/api.js';

declare function send(message: ServerMessage): void;
declare function close(code: CloseCode): void;
declare const post: components['schemas']['Post'];
declare const summary: components['schemas']['PostSummary'];
const timestamp = '2026-01-21T08:15:00.000Z';
const channel = 'posts/9f1c2b3a-4d5e-4f60-8a7b-1c2d3e4f5a6b';

// Declared messages compile.
send({ type: 'pong', id: '1' });
send({ type: 'subscribed', channel: 'posts' });
send({
  type: 'event',
  channel: 'posts',
  event: { type: 'post.published', timestamp, data: summary },
});
send({ type: 'event', channel, event: { type: 'post.updated', timestamp, data: post } });
send({
  type: 'event',
  channel: 'me',
  event: {
    type: 'session.ended',
    timestamp,
    data: { sessionId: post.id, reason: 'revoked', current: true },
  },
});

// An undeclared message type does not compile.
// @ts-expect-error: 'hello' is no server message.
send({ type: 'hello' });
// @ts-expect-error: a client's message is not the server's to send.
send({ type: 'subscribe', channel: 'posts' });
// @ts-expect-error: `subscribed` needs its channel.
send({ type: 'subscribed' });
// @ts-expect-error: an undeclared event type.
send({ type: 'event', channel: 'me', event: { type: 'user.sneezed', timestamp, data: post } });
send({
  type: 'event',
  channel: 'me',
  event: {
    type: 'session.ended',
    timestamp,
    // @ts-expect-error: an undeclared reason for a session's end.
    data: { sessionId: post.id, reason: 'boredom', current: true },
  },
});
// @ts-expect-error: a post's event on `me`.
send({ type: 'event', channel: 'me', event: { type: 'post.updated', timestamp, data: post } });
// @ts-expect-error: `me`'s event on a post's channel.
send({ type: 'event', channel, event: { type: 'user.role-changed', timestamp, data: post } });
// @ts-expect-error: no such channel.
send({ type: 'subscribed', channel: 'users' });
// @ts-expect-error: `posts` carries summaries, not whole posts.
send({ type: 'event', channel: 'posts', event: { type: 'post.published', timestamp, data: post } });
// @ts-expect-error: an error frame carries a Problem.
send({ type: 'error', problem: { message: 'no' } });

// Close codes are the declared ones.
close(4001);
close(1001);
// @ts-expect-error: 4999 is no declared close code.
close(4999);

/** Compiles only when A and B are the same type. */
type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const same = <A, B>(proof: Equal<A, B>) => proof;

// `type` tells a client's message apart: a switch over it narrows to each message.
export function channelOf(message: ClientMessage): string | null {
  switch (message.type) {
    case 'subscribe':
    case 'unsubscribe':
      return message.channel;
    case 'auth':
      // @ts-expect-error: `auth` has no channel.
      void message.channel;
      return null;
    case 'ping':
      return null;
  }
}

// The events of `posts/{id}` other than views are the webhooks' envelopes, the same types.
type PostEvent = ServerMessages['postEvent']['event'];
same<
  Extract<PostEvent, { type: 'post.updated' }>,
  NonNullable<webhooks['post.updated']['post']['requestBody']>['content']['application/json']
>(true);
same<CloseCodes['sessionEnded'], 4001>(true);
