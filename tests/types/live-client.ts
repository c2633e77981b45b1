/**
 * Compile-time guarantees of the live client (client/src/live.ts), checked by `tsc` in
 * `npm run check` (this file is type-checked, never run): each `@ts-expect-error` below
 * must meet an error, or the type check itself fails. A channel's handler gets the events
 * that channel's message declares in openapi/asyncapi.yaml, and a channel the document
 * does not have does not compile.
 */
import WebSocket from 'ws';
import {
  createLiveClient,
  type LiveEvent,
  type MeEventMessage,
  type PostEventMessage,
  type PostsEventMessage,
} from '../../client/src/index.js';

/** Compiles only when A and B are the same type. */
type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const same = <A, B>(proof: Equal<A, B>) => proof;

// ws's WebSocket fits the client's (Node 20 has none of its own).
const live = createLiveClient({ url: 'ws://localhost:3333/api/live', WebSocket });
declare const postId: string;

export const subscriptions = [
  live.subscribe('me', (event, channel) => {
    same<typeof event, MeEventMessage['event']>(true);
    same<typeof channel, 'me'>(true);
    void channel;
    if (event.type === 'session.ended') return event.data.current;
    // @ts-expect-error: `me` carries no post events.
    if (event.type === 'post.published') return null;
    return event.data.role;
  }),
  live.subscribe('posts', (event) => {
    same<typeof event, PostsEventMessage['event']>(true);
    if (event.type !== 'post.published') return undefined;
    // @ts-expect-error: `posts` carries summaries: an excerpt, no content.
    void event.data.content;
    return event.data.excerpt;
  }),
  live.subscribe(`posts/${postId}`, (event) => {
    same<typeof event, PostEventMessage['event']>(true);
    if (event.type === 'post.viewed') return event.data.viewCount;
    if (event.type === 'post.updated') return event.data.content;
    return undefined;
  }),
];

same<LiveEvent<'me'>, MeEventMessage['event']>(true);
// @ts-expect-error: no such channel.
live.subscribe('users', () => {});
// @ts-expect-error: a channel is one of the document's, not any string.
live.subscribe(postId, () => {});
// @ts-expect-error: a handler of `me` takes `me`'s events, not a post's.
live.subscribe('me', (event: PostEventMessage['event']) => event);
// @ts-expect-error: the WebSocket option is a constructor of sockets.
createLiveClient({ url: 'ws://localhost:3333/api/live', WebSocket: String });
