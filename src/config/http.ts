import { defineArea, durationPattern, milliseconds } from './area.js';

export interface HttpSettings {
  readonly bodyLimitBytes: number;
  /**
   * The HTTP server's limits on a client (Node's own defaults, and Fastify's, leave some
   * unbounded): how long it may take to send its headers and its whole request, how long
   * a connection may stay silent, how long an idle keep-alive connection is kept, and how
   * large the request headers may be.
   */
  readonly http: {
    readonly requestTimeoutMs: number;
    readonly headersTimeoutMs: number;
    readonly connectionTimeoutMs: number;
    readonly keepAliveTimeoutMs: number;
    readonly maxHeaderSize: number;
  };
}

export const httpArea = defineArea({
  title: 'HTTP limits',
  properties: {
    BODY_LIMIT_BYTES: {
      type: 'integer',
      minimum: 1024,
      maximum: 104857600,
      default: 1048576,
      description: 'the largest request body accepted, in bytes; larger bodies get 413',
    },
    REQUEST_TIMEOUT: {
      type: 'string',
      pattern: durationPattern,
      default: '30s',
      description:
        'how long a client may take to send its whole request; slower ones get 408 and are cut off',
    },
    HEADERS_TIMEOUT: {
      type: 'string',
      pattern: durationPattern,
      default: '10s',
      description:
        'how long a client may take to send its headers (not longer than `REQUEST_TIMEOUT`); slower ones get 408 and are cut off',
    },
    CONNECTION_TIMEOUT: {
      type: 'string',
      pattern: durationPattern,
      default: '60s',
      description: 'a connection silent this long is closed',
    },
    KEEP_ALIVE_TIMEOUT: {
      type: 'string',
      pattern: durationPattern,
      default: '72s',
      description:
        "an idle keep-alive connection is kept this long (longer than the load balancer's idle timeout, 60 s on most)",
    },
    MAX_HEADER_SIZE: {
      type: 'integer',
      minimum: 1024,
      maximum: 65536,
      default: 16384,
      description: 'the largest request headers accepted, in bytes (1024 to 65536); larger get 431',
    },
  },
  settings: (values, _context, report): HttpSettings => {
    const requestTimeoutMs = milliseconds(values.REQUEST_TIMEOUT);
    const headersTimeoutMs = milliseconds(values.HEADERS_TIMEOUT);
    // Node refuses a headers timeout longer than the request's.
    if (headersTimeoutMs > requestTimeoutMs) {
      report.problem(
        ['HEADERS_TIMEOUT', 'REQUEST_TIMEOUT'],
        'HEADERS_TIMEOUT must not be longer than REQUEST_TIMEOUT (the headers are part of the request).',
      );
    }
    return {
      bodyLimitBytes: values.BODY_LIMIT_BYTES,
      http: Object.freeze({
        requestTimeoutMs,
        headersTimeoutMs,
        connectionTimeoutMs: milliseconds(values.CONNECTION_TIMEOUT),
        keepAliveTimeoutMs: milliseconds(values.KEEP_ALIVE_TIMEOUT),
        maxHeaderSize: values.MAX_HEADER_SIZE,
      }),
    };
  },
});
