import { randomUUID } from 'node:crypto';
import type { FastifyServerOptions } from 'fastify';
import fp from 'fastify-plugin';

const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Fastify's genReqId: a caller's X-Request-Id is kept when it is sane, so logs can be
 * followed across services; otherwise a new UUID.
 */
export const requestIdOf: NonNullable<FastifyServerOptions['genReqId']> = (req) => {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && requestIdPattern.test(given) ? given : randomUUID();
};

/** Every response says its request's id (X-Request-Id), the problems included. */
export const requestIds = fp(
  async (app) => {
    // A callback hook: it runs for every response (an async one would cost a promise each).
    app.addHook('onSend', (request, reply, payload, done) => {
      reply.header('x-request-id', request.id);
      done(null, payload);
    });
  },
  { name: 'request-ids' },
);
