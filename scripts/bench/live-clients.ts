/**
 * The subscribers of `npm run bench:live`, in a process of their own (forked by live.ts), so
 * that their CPU time is not the server's and their event loop not the harness's. It opens
 * WebSockets to GET /api/live, subscribes each to `posts` (some also to `posts/{id}`), and
 * records when each socket received each `post.published` frame. Commands come over IPC.
 */
import WebSocket from 'ws';

export type ClientsCommand =
  | {
      id: number;
      command: 'open';
      url: string;
      sockets: number;
      /** `posts/{id}` channels: every `everyNth` socket also subscribes to the next of them. */
      postChannels: string[];
      everyNth: number;
      /** Sockets being opened at once. */
      concurrency: number;
    }
  /** The receipts of these posts' `post.published` frames, forgotten once sent. */
  | { id: number; command: 'collect'; posts: string[] }
  /** How many (socket, post) receipts of these posts are still missing. */
  | { id: number; command: 'pending'; posts: string[] }
  | { id: number; command: 'close' }
  /**
   * One more socket, apart from the timed ones (no receipts, not in `pending`): subscribed to
   * `channels`, then reading its frames, or (`stall`) never reading again: the slow consumer.
   */
  | { id: number; command: 'extra'; url: string; channels: string[]; stall: boolean }
  /** The extra socket closed (a stalled one sees no close frame: it is cut off here). */
  | { id: number; command: 'extra-close' };

export interface Receipts {
  /** The frame's event timestamp (the event's occurred_at), ms since 1970. */
  timestamp: number | null;
  /** Per socket, when it received the frame (ms since 1970), null if it did not. */
  receivedAt: (number | null)[];
}

export interface ClientsReply {
  id: number;
  error?: string;
  opened?: { sockets: number; subscriptions: number; ms: number };
  receipts?: Record<string, Receipts>;
  pending?: number;
  /** Sockets closed other than by `close`, by close code. */
  closedEarly?: Record<string, number>;
  /** Frames received that were not `post.published` (other events, answers). */
  otherFrames?: number;
  /** The extra socket's frames and bytes received (a stalled one's up to its stall). */
  extra?: { frames: number; bytes: number; closeCode: number | null };
}

/** Milliseconds since 1970, below the millisecond: comparable across the bench's processes. */
const now = () => performance.timeOrigin + performance.now();

const sockets: WebSocket[] = [];
/** Post id → per-socket receipt times (NaN: not received). */
const received = new Map<string, Float64Array>();
const timestamps = new Map<string, number>();
const closedEarly: Record<string, number> = {};
/** The frames seen: their post (null: not on `posts`) and their event's timestamp. */
const frames = new Map<string, { post: string | null; timestamp: number }>();
let otherFrames = 0;
let closing = false;

function receiptsOf(post: string): Float64Array {
  let times = received.get(post);
  if (!times) {
    times = new Float64Array(sockets.length).fill(Number.NaN);
    received.set(post, times);
  }
  return times;
}

/** Opens one socket and subscribes it; resolves once every subscription is answered. */
function openOne(url: string, index: number, channels: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
    let waiting = channels.length;
    socket.once('error', reject);
    socket.once('open', () => {
      sockets[index] = socket;
      for (const [n, channel] of channels.entries())
        socket.send(JSON.stringify({ type: 'subscribe', channel, id: `s${n}` }));
    });
    socket.on('message', (data) => {
      const at = now();
      const text = (data as Buffer).toString('utf8');
      // Only `post.published` frames on `posts` are timed. Every socket gets the same bytes
      // for an event: each distinct frame is parsed once, not once per socket.
      if (text.includes('"post.published"')) {
        let seen = frames.get(text);
        if (!seen) {
          const frame = JSON.parse(text) as {
            channel: string;
            event: { timestamp: string; data: { id: string } };
          };
          seen = {
            post: frame.channel === 'posts' ? frame.event.data.id : null,
            timestamp: Date.parse(frame.event.timestamp),
          };
          if (frames.size > 1000) frames.clear();
          frames.set(text, seen);
        }
        if (seen.post !== null) {
          const times = receiptsOf(seen.post);
          if (Number.isNaN(times[index]!)) times[index] = at;
          if (!timestamps.has(seen.post)) timestamps.set(seen.post, seen.timestamp);
          return;
        }
      }
      otherFrames += 1;
      if (waiting > 0 && text.includes('"subscribed"')) {
        waiting -= 1;
        if (waiting === 0) resolve();
      } else if (waiting > 0 && text.includes('"error"')) {
        reject(new Error(`subscribe refused: ${text}`));
      }
    });
    socket.once('close', (code) => {
      if (closing) return;
      closedEarly[code] = (closedEarly[code] ?? 0) + 1;
      if (waiting > 0) reject(new Error(`socket ${index} closed (${code}) before subscribing`));
    });
  });
}

async function open(command: Extract<ClientsCommand, { command: 'open' }>) {
  const started = now();
  const first = sockets.length;
  sockets.length = first + command.sockets;
  let next = 0;
  let subscriptions = 0;
  const worker = async () => {
    while (next < command.sockets) {
      const i = next++;
      const channels = ['posts'];
      if (command.postChannels.length > 0 && i % command.everyNth === 0) {
        const n = Math.floor(i / command.everyNth) % command.postChannels.length;
        channels.push(command.postChannels[n]!);
      }
      subscriptions += channels.length;
      await openOne(command.url, first + i, channels);
    }
  };
  await Promise.all(Array.from({ length: command.concurrency }, worker));
  return { sockets: command.sockets, subscriptions, ms: now() - started };
}

let extra: { socket: WebSocket; frames: number; bytes: number; closeCode: number | null } | null =
  null;

/** Opens the extra socket, subscribes it, and (`stall`) stops reading from it. */
function openExtra(command: Extract<ClientsCommand, { command: 'extra' }>): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(command.url, { perMessageDeflate: false });
    const state = { socket, frames: 0, bytes: 0, closeCode: null as number | null };
    extra = state;
    let waiting = command.channels.length;
    socket.once('error', reject);
    socket.once('open', () => {
      for (const [n, channel] of command.channels.entries())
        socket.send(JSON.stringify({ type: 'subscribe', channel, id: `x${n}` }));
    });
    socket.on('message', (data) => {
      state.frames += 1;
      state.bytes += (data as Buffer).length;
      if (waiting === 0) return;
      const text = (data as Buffer).toString('utf8');
      if (text.includes('"subscribed"')) {
        waiting -= 1;
        if (waiting > 0) return;
        // Nothing is read from the socket from here on: the kernel's buffers fill, then
        // the server's send buffer for it.
        if (command.stall) socket.pause();
        resolve();
      } else if (text.includes('"error"')) reject(new Error(`subscribe refused: ${text}`));
    });
    socket.once('close', (code) => (state.closeCode = code));
  });
}

async function closeExtra() {
  const state = extra;
  extra = null;
  if (!state || state.socket.readyState === WebSocket.CLOSED) return state;
  await new Promise<void>((resolve) => {
    state.socket.once('close', () => resolve());
    if (state.socket.isPaused) state.socket.terminate();
    else state.socket.close(1000);
  });
  return state;
}

async function closeAll() {
  closing = true;
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          if (!socket || socket.readyState === WebSocket.CLOSED) return resolve();
          socket.once('close', () => resolve());
          socket.close(1000);
        }),
    ),
  );
  sockets.length = 0;
  received.clear();
  timestamps.clear();
  closing = false;
}

function collect(posts: string[]): Record<string, Receipts> {
  const out: Record<string, Receipts> = {};
  for (const post of posts) {
    const times = received.get(post);
    out[post] = {
      timestamp: timestamps.get(post) ?? null,
      receivedAt: Array.from(times ?? new Float64Array(sockets.length).fill(Number.NaN), (t) =>
        Number.isNaN(t) ? null : t,
      ),
    };
    received.delete(post);
    timestamps.delete(post);
  }
  return out;
}

process.on('message', (message: ClientsCommand) => {
  const reply = (body: Omit<ClientsReply, 'id'>) =>
    process.send!({ id: message.id, ...body, closedEarly, otherFrames } satisfies ClientsReply);
  const work = async () => {
    switch (message.command) {
      case 'open':
        return reply({ opened: await open(message) });
      case 'collect':
        return reply({ receipts: collect(message.posts) });
      case 'pending': {
        let pending = 0;
        for (const post of message.posts) {
          const times = received.get(post);
          if (!times) pending += sockets.length;
          else for (const t of times) if (Number.isNaN(t)) pending += 1;
        }
        return reply({ pending });
      }
      case 'close':
        await closeAll();
        return reply({});
      case 'extra':
        await openExtra(message);
        return reply({});
      case 'extra-close': {
        const state = await closeExtra();
        return reply({
          extra: state
            ? { frames: state.frames, bytes: state.bytes, closeCode: state.closeCode }
            : undefined,
        });
      }
    }
  };
  work().catch((error: unknown) => reply({ error: String(error) }));
});
process.on('disconnect', () => process.exit(0));
