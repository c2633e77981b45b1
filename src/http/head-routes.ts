import type { onSendHookHandler } from 'fastify';
import fp from 'fastify-plugin';

const notModifiedWithoutLength: onSendHookHandler = (_request, reply, payload, done) => {
  if (reply.statusCode === 304) reply.removeHeader('content-length');
  done(null, payload);
};

/**
 * Fastify's HEAD twin of a GET (exposeHeadRoutes) says `Content-Length: 0` when there is
 * no body, a 304 included; a 304 must not state a length other than its 200's (RFC 9110
 * §8.6), and the GET's 304 states none. At the root, before any route is added.
 */
export const headRoutes = fp(
  async (app) => {
    app.addHook('onRoute', (route) => {
      if (route.method !== 'HEAD') return;
      const hooks = route.onSend;
      route.onSend = [...(hooks === undefined ? [] : [hooks].flat()), notModifiedWithoutLength];
    });
  },
  { name: 'head-routes' },
);
