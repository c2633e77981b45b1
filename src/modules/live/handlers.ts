import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { ServerMessage } from '../../../generated/asyncapi.js';
import { DomainError, type AnyDomainError } from '../../errors.js';
import { liveError, type LiveContract } from '../../http/live-messages.js';
import { domainProblems } from '../../http/problems.js';
import type { DropReason, LiveSockets } from '../../lib/live.js';
import type { LiveClient, LiveHub } from './service.js';

/**
 * The socket adapter of GET /api/live: frames in (read against the contract, answered
 * with an `error` frame when they break it; the socket stays open), the hub's answers and
 * events out, with the limits a socket has of its own: the send buffer (a slow consumer is
 * dropped, never buffered without end) and the heartbeat (a silent peer is cut off).
 */

export interface SocketSettings {
  sendBufferBytes: number;
  heartbeatIntervalMs: number;
  /** How long a dropped or closed peer gets to answer the close frame before it is cut off. */
  closeTimeoutMs: number;
  /** Outside production: every frame the server sends is checked against the contract. */
  checkMessages: boolean;
}

export interface LiveSocketsParts {
  hub: LiveHub;
  contract: LiveContract;
  settings: SocketSettings;
  log: FastifyBaseLogger;
  onDrop?: ((reason: DropReason) => void) | undefined;
  /** An answer sent (the hub counts the events it sends). */
  onSent?: ((type: string) => void) | undefined;
}

export function createLiveSockets(parts: LiveSocketsParts): LiveSockets {
  return new Sockets(parts);
}

class Sockets implements LiveSockets {
  private readonly sockets = new Set<WebSocket>();
  /** Sockets heard from (a pong, a frame) since the last ping. */
  private readonly alive = new WeakSet<WebSocket>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly parts: LiveSocketsParts) {
    this.heartbeat = setInterval(() => this.beat(), parts.settings.heartbeatIntervalMs);
    this.heartbeat.unref();
  }

  accept(socket: WebSocket, request: FastifyRequest): void {
    const codes = this.parts.contract.closeCodes;
    let dropped = false;
    const send = (frame: string | Buffer): boolean => {
      if (dropped || socket.readyState !== socket.OPEN) return false;
      // Past the limit with this frame, unless nothing waits (a frame larger than the
      // buffer still goes to a client that reads).
      const waiting = socket.bufferedAmount;
      if (waiting > 0 && waiting + Buffer.byteLength(frame) > this.parts.settings.sendBufferBytes) {
        dropped = true;
        this.drop(socket, 'slow-consumer', codes.slowConsumer, 'slow consumer');
        return false;
      }
      socket.send(frame, { binary: false });
      return true;
    };
    const close = (code: number, reason: string) => this.closeSoon(socket, code, reason);
    const client = this.parts.hub.connect({ send, close }, request.ip);
    if (!client) {
      this.drop(socket, 'too-many-connections', codes.tooManyConnections, 'too many connections');
      return;
    }
    this.sockets.add(socket);
    this.alive.add(socket);
    socket.on('pong', () => this.alive.add(socket));
    socket.on('close', () => {
      this.sockets.delete(socket);
      client.disconnect();
    });
    socket.on('error', (error) =>
      this.parts.log.debug({ message: error.message }, 'live socket error'),
    );
    // Attached at once: a frame sent right after the upgrade is not missed.
    socket.on('message', (data, isBinary) =>
      this.receive(socket, client, send, data as Buffer, isBinary),
    );
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    this.parts.hub.close();
    await Promise.all(
      [...this.sockets].map(
        (socket) =>
          new Promise<void>((resolve) => {
            if (socket.readyState === socket.CLOSED) resolve();
            else socket.once('close', () => resolve());
          }),
      ),
    );
  }

  private receive(
    socket: WebSocket,
    client: LiveClient,
    send: (frame: string) => boolean,
    data: Buffer,
    isBinary: boolean,
  ) {
    this.alive.add(socket);
    const reading = this.parts.contract.readClientMessage(data, isBinary);
    const answer = (message: ServerMessage) => {
      if (send(this.serialise(message))) this.parts.onSent?.(message.type);
    };
    if (!reading.ok) {
      answer(reading.error);
      return;
    }
    const { id } = reading.message;
    client.handle(reading.message).then(
      (reply) => answer(reply instanceof DomainError ? this.errorOf(reply, id) : reply),
      (error: unknown) => {
        this.parts.log.error({ err: error }, 'live socket: a message could not be handled');
        this.closeSoon(socket, this.parts.contract.closeCodes.internalError, 'internal error');
      },
    );
  }

  private serialise(message: ServerMessage): string {
    if (this.parts.settings.checkMessages) this.parts.contract.checkServerMessage(message);
    return JSON.stringify(message);
  }

  private errorOf(error: AnyDomainError, id: string | undefined) {
    return liveError(domainProblems[error.code], error.message, id);
  }

  /** Pings every socket; one not heard from since the last ping is cut off. */
  private beat() {
    for (const socket of this.sockets) {
      if (!this.alive.has(socket)) {
        this.parts.onDrop?.('heartbeat');
        socket.terminate();
        continue;
      }
      this.alive.delete(socket);
      socket.ping();
    }
  }

  private drop(socket: WebSocket, reason: DropReason, code: number, text: string) {
    this.parts.onDrop?.(reason);
    this.closeSoon(socket, code, text);
  }

  /** A close frame, and the connection cut if the peer has not answered it in time. */
  private closeSoon(socket: WebSocket, code: number, reason: string) {
    socket.close(code, reason);
    const timer = setTimeout(() => socket.terminate(), this.parts.settings.closeTimeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  }
}
