import type { FastifyServerOptions } from 'fastify';
import type { Config } from './config/index.js';

/**
 * Never in a log line: credentials and tokens. The server logs no request or response
 * body and no header (its request serialiser keeps method, URL, host and client address;
 * errors go through loggableError, which drops the SQL parameters), so these are a second
 * line of defence for a log call that passes one of them by name. They are exact paths:
 * a wildcard (`*.password`) makes pino walk every key of every line, which tripled the
 * cost of the request line (from ~7 to ~21 µs). None is under `req` or `res`, which every
 * request line holds (as the serialisers make them: no headers): a path there would
 * have pino copy them for every line.
 */
export const redactedPaths = [
  'headers.authorization',
  'headers.cookie',
  'body.password',
  'body.currentPassword',
  'body.newPassword',
  'body.token',
  'body.refreshToken',
  'password',
  'passwordHash',
  'currentPassword',
  'newPassword',
  'accessToken',
  'refreshToken',
  'token',
  'user.passwordHash',
];

/** pino options: JSON lines in production, pretty in development, quiet in tests. */
export function loggerOptions(
  config: Pick<Config, 'env' | 'logLevel'>,
): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    redact: { paths: redactedPaths, censor: '[redacted]' },
    ...(config.env === 'development'
      ? {
          transport: {
            target: 'pino-pretty',
            options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' },
          },
        }
      : {}),
  };
}
