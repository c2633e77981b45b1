import websocket from '@fastify/websocket';
import fp from 'fastify-plugin';
import { MalformedRequestError } from '../http/errors.js';
import type { LiveSockets } from '../lib/live.js';

/** The WebSocket's path (openapi/asyncapi.yaml's servers; the spec's x-excluded-routes). */
export const LIVE_PATH = '/api/live';

/**
 * GET /api/live: @fastify/websocket at the root (registered inside an encapsulated plugin,
 * upgrades to other routes leaked sockets and `app.close()` hung), its frames limited to
 * the contract's message size (a larger one closes the socket with 1009). At shutdown the
 * sockets are closed with 1001 (`goingAway`) so clients reconnect to another instance;
 * one that does not answer the close frame is cut off after the close timeout.
 */
export const live = fp<{ sockets: LiveSockets; maxMessageBytes: number }>(
  async (app, { sockets, maxMessageBytes }) => {
    await app.register(websocket, {
      options: { maxPayload: maxMessageBytes },
      async preClose() {
        await sockets.close();
        await new Promise<void>((resolve) => app.websocketServer.close(() => resolve()));
      },
    });
    app.route({
      method: 'GET',
      url: LIVE_PATH,
      handler: async () => {
        throw new MalformedRequestError(
          'GET /api/live is a WebSocket: open it with "Upgrade: websocket" (its messages: /docs/live).',
        );
      },
      wsHandler: (socket, request) => sockets.accept(socket, request),
    });
  },
  { name: 'live' },
);
