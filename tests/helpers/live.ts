import type { FastifyInstance } from 'fastify';
import WebSocket from 'ws';

/**
 * A WebSocket client of GET /api/live for tests: every frame it receives is kept, in
 * order, and `next` waits for the first one (not taken yet) that matches.
 */
export interface LiveTestClient {
  socket: WebSocket;
  send(message: unknown): void;
  /** The first frame received and not taken yet that matches; fails after `timeoutMs`. */
  next<T = Record<string, unknown>>(
    match?: (frame: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<T>;
  /** Sends `message` and waits for the answer carrying its `id`. */
  ask<T = Record<string, unknown>>(message: Record<string, unknown>): Promise<T>;
  /** Every frame received and not taken yet. */
  pending(): Record<string, unknown>[];
  /** Resolves with the close code and reason once the socket is closed. */
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

let ids = 0;

export async function openLiveClient(
  url: string,
  options: WebSocket.ClientOptions = {},
): Promise<LiveTestClient> {
  const socket = new WebSocket(url, options);
  const frames: Record<string, unknown>[] = [];
  const waiting = new Set<() => void>();
  socket.on('message', (data) => {
    frames.push(JSON.parse((data as Buffer).toString('utf8')) as Record<string, unknown>);
    for (const wake of waiting) wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.once('close', (code, reason) => {
      resolve({ code, reason: String(reason) });
      for (const wake of waiting) wake();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  const next = <T>(
    match: (frame: Record<string, unknown>) => boolean = () => true,
    // Events go through the relay and the bus: a loaded test machine takes seconds at times.
    timeoutMs = 10_000,
  ): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const look = () => {
        const index = frames.findIndex(match);
        if (index === -1) {
          if (socket.readyState === WebSocket.CLOSED) {
            done();
            reject(new Error(`the socket closed; frames left: ${JSON.stringify(frames)}`));
          }
          return;
        }
        const [frame] = frames.splice(index, 1);
        done();
        resolve(frame as T);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no such frame within ${timeoutMs} ms; got ${JSON.stringify(frames)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        waiting.delete(look);
      };
      waiting.add(look);
      look();
    });
  return {
    socket,
    send: (message) => socket.send(typeof message === 'string' ? message : JSON.stringify(message)),
    next,
    ask<T>(message: Record<string, unknown>) {
      ids += 1;
      const id = `q${ids}`;
      socket.send(JSON.stringify({ ...message, id }));
      return next<T>((frame) => frame.id === id);
    },
    pending: () => [...frames],
    closed,
    close: () => socket.close(),
  };
}

/** Listens on a free port of 127.0.0.1; returns the socket's URL. */
export async function liveUrlOf(app: FastifyInstance): Promise<string> {
  const address = app.server.address();
  if (!address || typeof address === 'string') {
    await app.listen({ port: 0, host: '127.0.0.1' });
  }
  const { port } = app.server.address() as { port: number };
  return `ws://127.0.0.1:${port}/api/live`;
}
