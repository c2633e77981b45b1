import type {
  ClientMessage,
  CloseCode,
  ErrorMessage,
  MeEventMessage,
  PostEventMessage,
  PostsEventMessage,
  ServerMessage,
} from './asyncapi.js';

/**
 * The live client: GET /api/live (the WebSocket of the API's AsyncAPI document) with typed
 * subscriptions, kept across reconnections. Every connection sends `auth` first (with a
 * fresh token, when there is one), then subscribes again to every channel; between a drop
 * and the resubscription events are lost, so the app is told (`reconnected`) and reads
 * what it shows again.
 */

/** The channels of the document: `posts`, `posts/{id}` and `me`. */
export type LiveChannel = 'posts' | `posts/${string}` | 'me';

/** The events a channel carries: `event` of its message in the document. */
export type LiveEvent<C extends LiveChannel> = C extends 'posts'
  ? PostsEventMessage['event']
  : C extends 'me'
    ? MeEventMessage['event']
    : PostEventMessage['event'];

/** The body of an `error` frame (RFC 9457, as in the REST API). */
export type LiveProblem = ErrorMessage['problem'];

/** What the document's `x-close-codes` say a client does after each close code. */
export type ReconnectHint = 'never' | 'at-once' | 'back-off' | 'after-login';

/** `x-close-codes`' `reconnect` by code; any other code (1006, 1005, …) is `back-off`. */
export const reconnectHints = {
  1000: 'never',
  1001: 'at-once',
  1009: 'never',
  1011: 'back-off',
  4001: 'after-login',
  4008: 'back-off',
  4009: 'back-off',
} as const satisfies Record<CloseCode, ReconnectHint>;

/**
 * - `connecting`: the first connection is being opened;
 * - `connected`: it is open, authenticated (with a token) and subscribed;
 * - `reconnecting`: the socket closed (`code`, `reason`); the next try is in `retryInMs`;
 * - `reconnected`: open and subscribed again. Events since the drop are lost: read the
 *   state again (`getPost`, `listPosts`, `getMe`);
 * - `session-ended`: closed with 4001 and the token source has no new token: log in
 *   (or refresh) and call `reconnect()`;
 * - `closed`: `close()` was called, or the server closed with a code not to retry (1000,
 *   1009).
 */
export type LiveStatus =
  'connecting' | 'connected' | 'reconnecting' | 'reconnected' | 'session-ended' | 'closed';

export interface LiveStatusInfo {
  code?: number;
  reason?: string;
  retryInMs?: number;
}

/** An `error` frame (its `problem`), or a failure of the connection or of a handler. */
export class LiveError extends Error {
  constructor(
    message: string,
    readonly problem?: LiveProblem,
    readonly channel?: LiveChannel,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'LiveError';
  }
}

/** What the client needs of a WebSocket: the browser's, Node 22's or the `ws` package's. */
export interface LiveSocket {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Listener<unknown> | null;
  onmessage: Listener<{ data: unknown }> | null;
  onclose: Listener<{ code: number; reason: string }> | null;
  onerror: Listener<unknown> | null;
}
// A method's parameters are compared both ways: the browser's and ws's listeners fit.
type Listener<E> = { bivariant(event: E): void }['bivariant'];

export type LiveSocketConstructor = new (url: string) => LiveSocket;

export interface LiveClientOptions {
  /** The socket's URL: `wss://api.example.com/api/live`. */
  url: string;
  /** Asked at every connection; its token is sent in `auth` before any subscription. */
  token?: () => string | null | undefined | Promise<string | null | undefined>;
  /** The WebSocket class; `globalThis.WebSocket` by default (Node 20 needs `ws`'s). */
  WebSocket?: LiveSocketConstructor;
  /** Exponential back-off with jitter: 500 ms doubling up to 30 s, each try 50–100 % of it. */
  backoff?: { initialMs?: number; maxMs?: number; factor?: number; jitter?: number };
  onStatus?: (status: LiveStatus, info: LiveStatusInfo) => void;
  /** `error` frames not answered through a promise, and handlers that threw. */
  onError?: (error: LiveError) => void;
}

export type LiveHandler<C extends LiveChannel> = (event: LiveEvent<C>, channel: C) => void;

/** Call it to unsubscribe; `ready` settles at the first `subscribed` (or `error`). */
export interface LiveSubscription {
  (): void;
  readonly ready: Promise<void>;
}

export interface LiveClient {
  /**
   * Calls `handler` with each event of `channel`, typed by the channel, from now on and
   * after every reconnection. A refusal (`NOT_FOUND`, `UNAUTHORIZED`, `RATE_LIMITED`) drops
   * the subscription: `ready` rejects with a `LiveError` holding the problem, and
   * `onError` gets it too. So does the server's end of one (a deleted post's).
   */
  subscribe<C extends LiveChannel>(channel: C, handler: LiveHandler<C>): LiveSubscription;
  /** Resolves on `pong`; rejects when the socket is not open or closes first. */
  ping(timeoutMs?: number): Promise<void>;
  /** Opens a new connection now (after `session-ended`, once there is a new token). */
  reconnect(): void;
  /** Stops for good: closes the socket (1000) and reconnects no more. */
  close(): void;
}

interface Channel {
  handlers: Set<LiveHandler<LiveChannel>>;
  ready: Promise<void>;
  settle(error?: LiveError): void;
}

interface Pending {
  resolve(message: ServerMessage): void;
  reject(error: LiveError): void;
}

const OPEN = 1;

function globalWebSocket(): LiveSocketConstructor {
  const Socket = (globalThis as { WebSocket?: LiveSocketConstructor }).WebSocket;
  if (!Socket) throw new TypeError('No WebSocket here: pass one (`ws`) as options.WebSocket.');
  return Socket;
}

export function createLiveClient(options: LiveClientOptions): LiveClient {
  const Socket = options.WebSocket ?? globalWebSocket();
  const { initialMs = 500, maxMs = 30_000, factor = 2, jitter = 0.5 } = options.backoff ?? {};
  const channels = new Map<LiveChannel, Channel>();
  const pending = new Map<string, Pending>();
  let socket: LiveSocket | undefined;
  let ready = false; // auth answered: subscriptions may go
  let everReady = false;
  let attempt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let ids = 0;

  const status = (value: LiveStatus, info: LiveStatusInfo = {}) => options.onStatus?.(value, info);
  const report = (error: LiveError) => {
    if (options.onError) options.onError(error);
    else console.error(error);
  };

  /** The token source's answer; a failure is reported, and the connection goes without. */
  function tokenNow(): Promise<string | null | undefined> {
    return Promise.resolve()
      .then(() => options.token?.())
      .catch((error: unknown) => {
        report(new LiveError('The token source failed.', undefined, undefined, { cause: error }));
        return null;
      });
  }

  function request(message: ClientMessage): Promise<ServerMessage> {
    const id = String((ids += 1));
    return new Promise((resolve, reject) => {
      if (socket?.readyState !== OPEN) {
        reject(new LiveError('The live connection is not open.'));
        return;
      }
      pending.set(id, { resolve, reject });
      socket.send(JSON.stringify({ ...message, id }));
    });
  }

  function failPending(why: string) {
    for (const [id, waiting] of pending) {
      pending.delete(id);
      waiting.reject(new LiveError(why));
    }
  }

  function problemOf(message: ServerMessage, what: string, channel?: LiveChannel) {
    if (message.type !== 'error') return undefined;
    return new LiveError(`${what}: ${message.problem.title}`, message.problem, channel);
  }

  async function sendSubscribe(name: LiveChannel, entry: Channel) {
    const answer = await request({ type: 'subscribe', channel: name }).catch(() => null);
    if (!answer) return; // the socket closed: the next connection sends it again
    const refused = problemOf(answer, `Subscribing to ${name}`, name);
    if (refused && channels.get(name) === entry) channels.delete(name);
    entry.settle(refused);
    if (refused) report(refused);
  }

  function connect() {
    clearTimeout(timer);
    timer = undefined;
    const current = new Socket(options.url);
    socket = current;
    ready = false;
    let usedToken: string | null | undefined;
    current.onopen = () => {
      void (async () => {
        usedToken = await tokenNow();
        if (socket !== current) return;
        if (usedToken) {
          const answer = await request({ type: 'auth', token: usedToken }).catch(() => null);
          if (!answer) return;
          const refused = problemOf(answer, 'Authenticating');
          if (refused) report(refused); // the connection stays anonymous
        }
        ready = true;
        await Promise.all([...channels].map(([name, entry]) => sendSubscribe(name, entry)));
        if (socket !== current || current.readyState !== OPEN) return;
        attempt = 0;
        status(everReady ? 'reconnected' : 'connected');
        everReady = true;
      })().catch((error: unknown) =>
        report(new LiveError('Connecting', undefined, undefined, { cause: error })),
      );
    };
    current.onmessage = (event) => receive(String(event.data));
    current.onerror = () => undefined; // a close event follows, with its code
    current.onclose = ({ code, reason }) => {
      if (socket !== current) return;
      socket = undefined;
      ready = false;
      failPending(`The live connection closed (${code}).`);
      if (!stopped) void closed(code, reason, usedToken);
    };
  }

  async function closed(code: number, reason: string, usedToken: string | null | undefined) {
    const hint: ReconnectHint =
      (reconnectHints as Record<number, ReconnectHint>)[code] ?? 'back-off';
    if (hint === 'never') return stop('closed', { code, reason });
    if (hint === 'after-login') {
      const next = await tokenNow();
      if (stopped) return;
      if (!next || next === usedToken) return stop('session-ended', { code, reason });
    }
    const base = Math.min(maxMs, initialMs * factor ** attempt);
    const retryInMs =
      hint !== 'back-off' && attempt === 0 ? 0 : Math.round(base * (1 - jitter * Math.random()));
    attempt += 1;
    status('reconnecting', { code, reason, retryInMs });
    timer = setTimeout(connect, retryInMs);
  }

  function stop(value: LiveStatus, info: LiveStatusInfo) {
    stopped = true;
    clearTimeout(timer);
    status(value, info);
  }

  function receive(text: string) {
    let message: ServerMessage;
    try {
      message = JSON.parse(text) as ServerMessage;
    } catch (error) {
      return report(
        new LiveError('The server sent a frame that is not JSON.', undefined, undefined, {
          cause: error,
        }),
      );
    }
    if (message.type === 'event') {
      const entry = channels.get(message.channel);
      for (const handler of entry?.handlers ?? []) {
        try {
          handler(message.event, message.channel);
        } catch (error) {
          report(
            new LiveError(`A handler of ${message.channel} threw.`, undefined, message.channel, {
              cause: error,
            }),
          );
        }
      }
      return;
    }
    const waiting = message.id === undefined ? undefined : pending.get(message.id);
    if (waiting && message.id !== undefined) {
      pending.delete(message.id);
      return waiting.resolve(message);
    }
    if (message.type === 'error') report(new LiveError(message.problem.title, message.problem));
    // The server ended a subscription itself (its post was deleted): it is not sent again.
    else if (message.type === 'unsubscribed' && message.id === undefined) {
      channels.delete(message.channel);
    }
  }

  function subscribe<C extends LiveChannel>(name: C, handler: LiveHandler<C>): LiveSubscription {
    let entry = channels.get(name);
    if (!entry) {
      let settle!: (error?: LiveError) => void;
      const promise = new Promise<void>((resolve, reject) => {
        settle = (error) => (error ? reject(error) : resolve());
      });
      promise.catch(() => undefined); // reported through onError as well
      entry = { handlers: new Set(), ready: promise, settle };
      channels.set(name, entry);
      if (ready) void sendSubscribe(name, entry);
    }
    const own = entry;
    own.handlers.add(handler as LiveHandler<LiveChannel>);
    const unsubscribe = () => {
      own.handlers.delete(handler as LiveHandler<LiveChannel>);
      if (own.handlers.size > 0 || channels.get(name) !== own) return;
      channels.delete(name);
      if (!ready) return;
      void request({ type: 'unsubscribe', channel: name }).then(
        (answer) => {
          const refused = problemOf(answer, `Unsubscribing from ${name}`, name);
          if (refused) report(refused);
        },
        () => undefined,
      );
    };
    return Object.assign(unsubscribe, { ready: own.ready });
  }

  async function ping(timeoutMs = 10_000): Promise<void> {
    let timeout: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timeout = setTimeout(() => reject(new LiveError('No pong in time.')), timeoutMs);
    });
    try {
      await Promise.race([request({ type: 'ping' }), late]);
    } finally {
      clearTimeout(timeout);
    }
  }

  function reconnect() {
    stopped = false;
    attempt = 0;
    clearTimeout(timer);
    const previous = socket;
    socket = undefined;
    failPending('The live client reconnected.');
    previous?.close(1000, 'reconnecting');
    status('connecting');
    connect();
  }

  function close() {
    stopped = true;
    clearTimeout(timer);
    const previous = socket;
    socket = undefined;
    ready = false;
    failPending('The live client was closed.');
    previous?.close(1000, 'closed by the client');
    status('closed', { code: 1000 });
  }

  status('connecting');
  connect();
  return { subscribe, ping, reconnect, close };
}
