import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyInstance {
    /** Whether the app is shutting down (`close()` was called): /ready answers 503 then. */
    closing: () => boolean;
  }
}

/**
 * Graceful shutdown. Its preClose hook must be the first one, so that it happens at once:
 * /ready turns 503, the server stops listening (Fastify's own server.close() comes after
 * the other preClose hooks and still waits for the connections in use), and every reply
 * from then on says `Connection: close`. A keep-alive connection that went quiet after its
 * reply would keep the server open until it timed out: such connections are closed as
 * they become idle (never one with a response in progress).
 *
 * Requests still reaching the server meanwhile (on connections it had already accepted)
 * are answered as usual, /ready with its own 503 problem: Fastify's return503OnClosing
 * would answer every route with a plain JSON 503 (the server options turn it off).
 */
export const gracefulClose = fp(
  async (app) => {
    let closing = false;
    let sweep: NodeJS.Timeout | undefined;
    app.decorate('closing', () => closing);
    app.addHook('preClose', async () => {
      closing = true;
      if (!app.server.listening) return;
      app.server.close();
      sweep = setInterval(() => app.server.closeIdleConnections(), 50);
      sweep.unref();
    });
    app.addHook('onClose', async () => clearInterval(sweep));
    // A callback hook: it runs for every response (an async one would cost a promise each).
    app.addHook('onSend', (_request, reply, payload, done) => {
      if (closing) reply.header('connection', 'close');
      done(null, payload);
    });
  },
  { name: 'graceful-close' },
);
