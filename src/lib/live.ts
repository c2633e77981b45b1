import type { FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';

/**
 * The WebSocket's shapes that the plugins (metrics, the route) and the live module share:
 * the module implements them (src/modules/live), the plugins read and register them.
 */

/** Why the server dropped a socket. */
export type DropReason = 'slow-consumer' | 'heartbeat' | 'too-many-connections';

/** The hub's counts, read at scrape time. */
export interface LiveStats {
  connections: number;
  authenticated: number;
  subscriptions: Record<'posts' | 'post' | 'me', number>;
}

export interface LiveSockets {
  /** The WebSocket route's handler (@fastify/websocket's `wsHandler`). */
  accept(socket: WebSocket, request: FastifyRequest): void;
  /** Closes the remaining sockets: `goingAway` first, cut off after the close timeout. */
  close(): Promise<void>;
}
