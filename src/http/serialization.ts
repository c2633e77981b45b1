import fastJsonStringifyCompiler from '@fastify/fast-json-stringify-compiler';
import type { FastifyServerOptions } from 'fastify';

type SerializerFactory = ReturnType<typeof fastJsonStringifyCompiler.SerializerSelector>;

/**
 * Fastify's own serializers (fast-json-stringify, through the spec's response schemas, so
 * undeclared fields never leave), each compiled at the first response that needs it
 * instead of for every status of every operation as the server starts: 70 ms of each
 * start, for responses most of which a server does not send for a while (and a test's
 * server never sends). Same compiler, same options, same output.
 */
const buildSerializer: SerializerFactory = (externalSchemas, options) => {
  const compile = fastJsonStringifyCompiler.SerializerSelector()(externalSchemas, options);
  return (route) => {
    let serialize: ((doc: unknown) => string) | undefined;
    return (doc: unknown) => (serialize ??= compile(route))(doc);
  };
};

export const serializersCompiledWhenFirstUsed: FastifyServerOptions['schemaController'] = {
  compilersFactory: { buildSerializer },
};
