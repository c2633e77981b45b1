import type { FastifyServerOptions } from 'fastify';
import pino, { type DestinationStream } from 'pino';
import type { Config } from './config.js';

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

/** How long a log line may wait in the buffer of logDestination (ms). */
export const LOG_FLUSH_INTERVAL_MS = 250;

/**
 * Where a server's log lines go outside development (where pino-pretty's transport writes
 * them): standard output, through a buffer written when it holds 4 KiB or every 250 ms,
 * whichever comes first. A write per line (pino's default: handed to libuv's thread pool
 * each time) cost ~9 µs of the process's CPU a request at the default level, about as
 * much as making the line; batched, a dozen lines share one write, made on the spot.
 * Lines still in the buffer when the process exits are written then (pino flushes on exit,
 * crashes included); a process killed outright (SIGKILL) loses its last 250 ms of lines
 * at most.
 */
export function logDestination(
  config: Pick<Config, 'env'>,
): (DestinationStream & { flush(): void }) | undefined {
  if (config.env === 'development') return undefined;
  return pino.destination({
    dest: 1,
    sync: true,
    minLength: 4096,
    periodicFlush: LOG_FLUSH_INTERVAL_MS,
  });
}
