import type { FastifyServerOptions } from 'fastify';
import type { Config } from './config.js';

/** Never in a log line: credentials and tokens, wherever they appear. */
export const redactedPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'password',
  'passwordHash',
  'accessToken',
  'token',
  '*.password',
  '*.passwordHash',
  '*.accessToken',
  '*.token',
  'body.password',
  'refreshToken',
  '*.refreshToken',
  'currentPassword',
  '*.currentPassword',
  'newPassword',
  '*.newPassword',
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
