import type {
  components,
  ClientMessage,
  MeEventMessage,
  PostEventMessage,
  PostsEventMessage,
  ServerMessage,
} from '../../../generated/asyncapi.js';
import {
  ConflictError,
  LimitReachedError,
  NotFoundError,
  UnauthenticatedError,
  type AnyDomainError,
} from '../../errors.js';
import type { LiveStats } from '../../lib/live.js';
import type { Principal } from '../../lib/principal.js';
import type { LiveSessionCheck, RevokedSession } from '../auth/sessions-repository.js';
import type { DomainEvent } from '../events/types.js';
import { summaryOf, type Post } from '../posts/rows.js';
import type { PostsService } from '../posts/service.js';

/**
 * The live updates' hub of one API instance (openapi/asyncapi.yaml): who is connected,
 * authenticated as whom, subscribed to what; and what each gets.
 *
 * - Posts' events are the domain events (the events table), announced on the live bus by
 *   the relay once committed; each is made into its frame once per channel, serialised
 *   once, and sent to every subscriber of the channel.
 * - What is not a domain event is read from the database, for the open sockets only: the
 *   sessions of the authenticated sockets (and their accounts' role and verification)
 *   twice a second, so a socket whose session ended is closed within a second whatever
 *   ended it; and the view counts of the posts with subscribers once a second.
 *
 * It knows nothing of WebSockets: a connection is a `send` and a `close` (the socket
 * adapter, handlers.ts, gives them, and owns the limits of frames and buffers).
 */

export interface LiveConnection {
  /** Sends one frame (serialised JSON); false when the connection was dropped instead. */
  /** A text frame, as a string or already encoded as UTF-8 (an event sent to many). */
  send(frame: string | Buffer): boolean;
  close(code: number, reason: string): void;
}

/** Why a session ended, as the contract's `session.ended` says it. */
export type SessionEndReason = components['schemas']['SessionEndedEvent']['data']['reason'];

export interface LiveDeps {
  posts: Pick<PostsService, 'get' | 'publishedViewCounts'>;
  /** The access token of an `auth` message → its principal; throws UnauthenticatedError. */
  authenticate(token: string): Promise<Principal>;
  checkSessions(
    pairs: readonly { userId: string; sessionId: string }[],
  ): Promise<Map<string, LiveSessionCheck>>;
  /** The sessions of these users revoked after `since`. */
  revokedSince(userIds: readonly string[], since: Date): Promise<RevokedSession[]>;
  readEvents(ids: readonly string[]): Promise<DomainEvent[]>;
  /** Outside production: throws when a message breaks the contract (once per frame made). */
  checkMessage?: ((message: ServerMessage) => void) | undefined;
  limits: {
    maxConnectionsPerAddress: number;
    maxSubscriptionsPerConnection: number;
    /** Client messages of one socket waiting for their answers (the rest: RATE_LIMITED). */
    maxPendingMessages: number;
    sessionCheckIntervalMs: number;
    viewCountIntervalMs: number;
  };
  /** The codes sockets are closed with (the contract's x-close-codes). */
  closeCodes: { sessionEnded: number; goingAway: number };
  metrics?: LiveMetrics | undefined;
  log: {
    warn(facts: Record<string, unknown>, message: string): void;
  };
}

export interface LiveMetrics {
  /** Frames sent, by message type. */
  sent(type: string, count: number): void;
  /** From an event's commit to its frames handed to the sockets, in seconds. */
  fanOut(seconds: number): void;
}

/** A client's open socket, as the hub knows it. */
export interface LiveClient {
  /** Answers one client message (the adapter sends the frame, or the error's). */
  handle(message: ClientMessage): Promise<ServerMessage | AnyDomainError>;
  /** The socket closed: forget it. */
  disconnect(): void;
}

export interface LiveHub {
  /** A new socket from `address`; null when the address holds too many already. */
  connect(connection: LiveConnection, address: string): LiveClient | null;
  /** Events the relay committed (ids from the bus): read and sent to their channels. */
  announce(eventIds: readonly string[]): Promise<void>;
  /** Closes every socket with `goingAway` (shutdown) and stops the polls. */
  close(): void;
  stats(): LiveStats;
}

interface Client {
  connection: LiveConnection;
  address: string;
  principal: Principal | null;
  /** The account as last seen: a change of role or verification is a `me` event. */
  account: Principal['account'] | null;
  channels: Set<string>;
  /** When it subscribed to `me`: the ends of other sessions told are those after it. */
  meSince: number;
  /** Client messages are handled one after the other, in the order they came. */
  queue: Promise<unknown>;
  /** Messages received and not answered yet. */
  pending: number;
  closed: boolean;
}

const POST_CHANNEL = /^posts\/([0-9a-f-]{36})$/;

/** Why a session that is no longer live ended, as `session.ended` says it. */
function reasonOf(check: Exclude<LiveSessionCheck, { status: 'live' }>): SessionEndReason {
  switch (check.status) {
    case 'session-revoked':
      return check.reason;
    case 'account-disabled':
      return 'account-disabled';
    case 'session-expired':
    case 'session-idle':
      return 'expired';
    default:
      // The session's row went with its account.
      return 'account-deleted';
  }
}

/**
 * How far back each look for other sessions' ends goes: a revocation's time is its
 * transaction's start, which may commit a while later, and the clocks of the database and
 * of this process may differ. Ends already told are remembered this long.
 */
const REVOKED_LOOKBACK_MS = 30_000;

/** `post.published` and `post.updated` on `posts` carry the summary, as listPosts shows it. */
function postsFrame(event: DomainEvent): PostsEventMessage | null {
  const timestamp = event.occurredAt;
  switch (event.type) {
    case 'post.published':
    case 'post.updated':
      return {
        type: 'event',
        channel: 'posts',
        event: { type: event.type, timestamp, data: summaryOf(event.payload as Post) },
      };
    case 'post.unpublished':
    case 'post.deleted':
      return {
        type: 'event',
        channel: 'posts',
        event: { type: event.type, timestamp, data: event.payload },
      } as PostsEventMessage;
    default:
      return null;
  }
}

/** On `posts/{id}`, the webhook's own envelope: the whole post. */
function postFrame(event: DomainEvent, channel: `posts/${string}`): PostEventMessage {
  return {
    type: 'event',
    channel,
    event: { type: event.type, timestamp: event.occurredAt, data: event.payload },
  } as PostEventMessage;
}

const meEvent = (event: MeEventMessage['event']): MeEventMessage => ({
  type: 'event',
  channel: 'me',
  event,
});

/** How many announced event ids are remembered, so that one announced twice is sent once. */
const SENT_KEPT = 10_000;

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

export function createLiveHub(deps: LiveDeps): LiveHub {
  return new Hub(deps);
}

class Hub implements LiveHub {
  private readonly clients = new Set<Client>();
  private readonly perAddress = new Map<string, number>();
  private readonly channels = new Map<string, Set<Client>>();
  /** View counts last sent per post (those with subscribers). */
  private readonly viewCounts = new Map<string, number>();
  private readonly timers: NodeJS.Timeout[];
  /** The ids of the events announced last (insertion order: the oldest go first). */
  private readonly sent = new Set<string>();
  private closing = false;

  constructor(private readonly deps: LiveDeps) {
    this.timers = [
      this.every(deps.limits.sessionCheckIntervalMs, 'the sessions check', () =>
        this.checkSessions(),
      ),
      this.every(deps.limits.viewCountIntervalMs, 'the view counts check', () => this.checkViews()),
    ];
  }

  connect(connection: LiveConnection, address: string): LiveClient | null {
    if (this.closing) {
      connection.close(this.deps.closeCodes.goingAway, 'the server is shutting down');
      return null;
    }
    const held = this.perAddress.get(address) ?? 0;
    if (held >= this.deps.limits.maxConnectionsPerAddress) return null;
    this.perAddress.set(address, held + 1);
    const client: Client = {
      connection,
      address,
      principal: null,
      account: null,
      channels: new Set(),
      meSince: 0,
      queue: Promise.resolve(),
      pending: 0,
      closed: false,
    };
    this.clients.add(client);
    return {
      handle: (message) => {
        // A client that sends faster than its messages are answered is told so, and its
        // messages are not kept without end.
        const max = this.deps.limits.maxPendingMessages;
        if (client.pending >= max) {
          const refusal = `At most ${max} messages may wait for their answers: wait for them.`;
          return Promise.resolve(new LimitReachedError(refusal));
        }
        client.pending += 1;
        const answer = client.queue.then(() => this.handle(client, message));
        client.queue = answer.catch(() => undefined).finally(() => (client.pending -= 1));
        return answer;
      },
      disconnect: () => this.forget(client),
    };
  }

  async announce(ids: readonly string[]): Promise<void> {
    if (this.clients.size === 0 || this.channels.size === 0) return;
    // A batch the relay could not queue is announced again when it takes it again.
    const fresh = ids.filter((id) => !this.sent.has(id));
    if (fresh.length === 0) return;
    for (const id of fresh) this.sent.add(id);
    while (this.sent.size > SENT_KEPT) this.sent.delete(this.sent.values().next().value!);
    const events = await this.deps.readEvents(fresh);
    for (const event of events) this.send(event);
  }

  close(): void {
    this.closing = true;
    for (const timer of this.timers) clearInterval(timer);
    for (const client of [...this.clients]) {
      client.connection.close(this.deps.closeCodes.goingAway, 'the server is shutting down');
      this.forget(client);
    }
  }

  stats(): LiveStats {
    const subscriptions = { posts: 0, post: 0, me: 0 };
    for (const [channel, subscribers] of this.channels) {
      const kind = channel === 'posts' ? 'posts' : channel === 'me' ? 'me' : 'post';
      subscriptions[kind] += subscribers.size;
    }
    let authenticated = 0;
    for (const client of this.clients) if (client.principal) authenticated += 1;
    return { connections: this.clients.size, authenticated, subscriptions };
  }

  // ---- Clients and their channels.

  private deliver(subscribers: Iterable<Client>, message: ServerMessage) {
    this.deps.checkMessage?.(message);
    // Encoded once for all its subscribers, not once per socket.
    const frame = Buffer.from(JSON.stringify(message));
    let count = 0;
    for (const client of subscribers) if (client.connection.send(frame)) count += 1;
    this.deps.metrics?.sent(message.type, count);
  }

  private leave(client: Client, channel: string) {
    client.channels.delete(channel);
    const subscribers = this.channels.get(channel);
    subscribers?.delete(client);
    if (subscribers?.size !== 0) return;
    this.channels.delete(channel);
    const post = POST_CHANNEL.exec(channel);
    if (post) this.viewCounts.delete(post[1]!);
  }

  private forget(client: Client) {
    if (client.closed) return;
    client.closed = true;
    this.clients.delete(client);
    for (const channel of [...client.channels]) this.leave(client, channel);
    const left = (this.perAddress.get(client.address) ?? 1) - 1;
    if (left === 0) this.perAddress.delete(client.address);
    else this.perAddress.set(client.address, left);
  }

  private async handle(
    client: Client,
    message: ClientMessage,
  ): Promise<ServerMessage | AnyDomainError> {
    const id = message.id === undefined ? {} : { id: message.id };
    switch (message.type) {
      case 'auth': {
        const refused = await this.authenticate(client, message.token);
        if (refused) return refused;
        const { userId, role, sessionId } = client.principal!;
        return { type: 'authenticated', ...id, userId, role, sessionId };
      }
      case 'subscribe': {
        const refused = await this.subscribe(client, message.channel);
        return refused ?? { type: 'subscribed', ...id, channel: message.channel };
      }
      case 'unsubscribe':
        this.leave(client, message.channel);
        return { type: 'unsubscribed', ...id, channel: message.channel };
      case 'ping':
        return { type: 'pong', ...id };
    }
  }

  private async authenticate(client: Client, token: string): Promise<AnyDomainError | null> {
    if (client.principal) {
      return new ConflictError('The connection is authenticated already.', null, 'authenticated');
    }
    if (client.channels.size > 0) {
      const message = 'Send auth before subscribing: reconnect to authenticate.';
      return new ConflictError(message, null, 'subscribed');
    }
    try {
      const principal = await this.deps.authenticate(token);
      if (!client.closed) {
        client.principal = principal;
        client.account = principal.account;
      }
      return null;
    } catch (error) {
      if (error instanceof UnauthenticatedError) return error;
      throw error;
    }
  }

  private async subscribe(client: Client, channel: string): Promise<AnyDomainError | null> {
    if (client.channels.has(channel)) return null;
    const { maxSubscriptionsPerConnection: max } = this.deps.limits;
    if (client.channels.size >= max) {
      return new LimitReachedError(
        `A connection holds at most ${max} subscriptions: unsubscribe from one first.`,
      );
    }
    if (channel === 'me' && !client.principal) {
      return new UnauthenticatedError('Send an auth message with an access token first.');
    }
    const post = POST_CHANNEL.exec(channel);
    if (post) {
      const id = post[1]!;
      // As getPost: a draft exists only for its author and admins.
      const found = await this.deps.posts.get(client.principal, id);
      if (!found.ok) return new NotFoundError(`Post ${id}`);
      const { publishedAt, viewCount } = found.value.post;
      if (publishedAt !== null && !this.viewCounts.has(id)) this.viewCounts.set(id, viewCount);
    }
    if (client.closed) return null;
    if (channel === 'me') client.meSince = Date.now();
    client.channels.add(channel);
    let subscribers = this.channels.get(channel);
    if (!subscribers) this.channels.set(channel, (subscribers = new Set()));
    subscribers.add(client);
    return null;
  }

  // ---- Posts' events, from the bus.

  private send(event: DomainEvent) {
    if (!event.type.startsWith('post.')) return;
    const all = this.channels.get('posts');
    const frame = all && postsFrame(event);
    if (all && frame) this.deliver(all, frame);
    const channel = `posts/${event.subjectId}` as const;
    const one = this.channels.get(channel);
    if (one) {
      this.deliver(one, postFrame(event, channel));
      if (event.type === 'post.deleted') {
        // Its subscription ends with it.
        const ended = [...one];
        this.deliver(ended, { type: 'unsubscribed', channel });
        for (const client of ended) this.leave(client, channel);
      }
    }
    // The view count a published post's subscribers saw last (a draft has none to send).
    if (event.type === 'post.published' || event.type === 'post.updated') {
      const post = event.payload as Post;
      if (this.channels.has(channel)) this.viewCounts.set(post.id, post.viewCount);
    }
    this.deps.metrics?.fanOut((Date.now() - Date.parse(event.occurredAt)) / 1000);
  }

  // ---- Sessions and accounts, twice a second.

  private sessionEnded(client: Client, reason: SessionEndReason) {
    if (client.channels.has('me')) {
      const { sessionId } = client.principal!;
      const timestamp = new Date().toISOString();
      const data = { sessionId, reason, current: true };
      this.deliver([client], meEvent({ type: 'session.ended', timestamp, data }));
    }
    client.connection.close(this.deps.closeCodes.sessionEnded, 'the session ended');
    this.forget(client);
  }

  private accountChanged(client: Client, account: Principal['account']) {
    const before = client.account!;
    client.account = account;
    client.principal = { ...client.principal!, role: account.role, account };
    if (!client.channels.has('me')) return;
    const timestamp = account.updatedAt;
    if (account.role !== before.role)
      this.deliver([client], meEvent({ type: 'user.role-changed', timestamp, data: account }));
    if (account.emailVerified && !before.emailVerified)
      this.deliver([client], meEvent({ type: 'user.email-verified', timestamp, data: account }));
  }

  private async checkSessions() {
    const authenticated = [...this.clients].filter((client) => client.principal);
    if (authenticated.length === 0) return;
    await this.tellRevoked(authenticated.filter((client) => client.channels.has('me')));
    const checks = await this.deps.checkSessions(
      authenticated.map(({ principal }) => ({
        userId: principal!.userId,
        sessionId: principal!.sessionId,
      })),
    );
    for (const client of authenticated) {
      const check = checks.get(client.principal!.sessionId);
      if (client.closed || !check) continue;
      const { role, emailVerified } = client.account!;
      if (check.status !== 'live') this.sessionEnded(client, reasonOf(check));
      else if (check.user.role !== role || check.user.emailVerified !== emailVerified)
        this.accountChanged(client, check.user);
    }
  }

  /** Ends told to `me` already (session id → when), kept for the look-back. */
  private readonly told = new Map<string, number>();

  /** `session.ended` on `me` for the account's other sessions revoked meanwhile. */
  private async tellRevoked(listening: Client[]) {
    const now = Date.now();
    for (const [sessionId, at] of this.told)
      if (at < now - 2 * REVOKED_LOOKBACK_MS) this.told.delete(sessionId);
    if (listening.length === 0) return;
    const users = [...new Set(listening.map((client) => client.principal!.userId))];
    const revoked = await this.deps.revokedSince(users, new Date(now - REVOKED_LOOKBACK_MS));
    for (const end of revoked) {
      if (this.told.has(end.sessionId)) continue;
      this.told.set(end.sessionId, now);
      const timestamp = end.revokedAt.toISOString();
      const data = { sessionId: end.sessionId, reason: end.reason, current: false };
      const to = listening.filter(
        ({ principal, meSince, closed }) =>
          !closed &&
          principal!.userId === end.userId &&
          principal!.sessionId !== end.sessionId &&
          end.revokedAt.getTime() >= meSince - 1000,
      );
      if (to.length > 0) this.deliver(to, meEvent({ type: 'session.ended', timestamp, data }));
    }
  }

  // ---- View counts, once a second.

  private async checkViews() {
    if (this.viewCounts.size === 0) return;
    const counts = await this.deps.posts.publishedViewCounts([...this.viewCounts.keys()]);
    for (const [id, viewCount] of counts) {
      const last = this.viewCounts.get(id);
      if (last === undefined || viewCount <= last) continue;
      this.viewCounts.set(id, viewCount);
      const channel = `posts/${id}` as const;
      const subscribers = this.channels.get(channel);
      if (!subscribers) continue;
      const timestamp = new Date().toISOString();
      this.deliver(subscribers, {
        type: 'event',
        channel,
        event: { type: 'post.viewed', timestamp, data: { viewCount } },
      });
    }
  }

  /** Runs `work` every `everyMs`, one run at a time, while anybody is connected. */
  private every(everyMs: number, what: string, work: () => Promise<void>) {
    let failing = false;
    let running = false;
    const timer = setInterval(() => {
      if (running || this.clients.size === 0) return;
      running = true;
      work()
        .then(() => (failing = false))
        .catch((error: unknown) => {
          if (failing) return;
          failing = true;
          const message = `live updates: ${what} failed; trying again`;
          this.deps.log.warn({ message: messageOf(error) }, message);
        })
        .finally(() => (running = false));
    }, everyMs);
    timer.unref();
    return timer;
  }
}
