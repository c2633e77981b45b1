import { defineArea, durationPattern, milliseconds } from './area.js';

export interface ServerSettings {
  readonly env: 'development' | 'production' | 'test';
  readonly port: number;
  /** 127.0.0.1 unless HOST says otherwise: the image and the deployment files set 0.0.0.0. */
  readonly host: string;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Validate every response against the spec (development and tests; it costs CPU). */
  readonly responseValidation: boolean;
  /**
   * How long a shutdown (SIGTERM, SIGINT) waits for the requests in flight before it cuts
   * their connections.
   */
  readonly shutdownTimeoutMs: number;
  /**
   * The `servers` URL of the published spec (/openapi.json, /openapi.yaml, /docs): the API's
   * public address, without a trailing slash; undefined: `/`, the server that serves it.
   */
  readonly publicApiUrl: string | undefined;
}

export const serverArea = defineArea({
  title: 'Server',
  properties: {
    NODE_ENV: {
      type: 'string',
      enum: ['development', 'production', 'test'],
      default: 'development',
      description: '`development`, `production` or `test`',
    },
    PORT: {
      type: 'integer',
      minimum: 0,
      maximum: 65535,
      default: 3333,
      description: 'the port the API listens on',
    },
    HOST: {
      type: 'string',
      minLength: 1,
      default: '127.0.0.1',
      description:
        'the address the API listens on; `0.0.0.0` listens on every interface (the image, `docker-compose.yml` and `deploy/kubernetes` set it)',
    },
    LOG_LEVEL: {
      type: 'string',
      enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      default: 'info',
      description: 'pino level; logs are pretty in development, JSON lines otherwise',
    },
    RESPONSE_VALIDATION: {
      type: 'boolean',
      'x-default': 'on, off in production',
      description:
        'validate every response, and every webhook payload as it is recorded, against the spec (`true`/`false`)',
    },
    SHUTDOWN_TIMEOUT: {
      type: 'string',
      pattern: durationPattern,
      default: '10s',
      description:
        'on SIGTERM or SIGINT, how long requests in flight may take to finish (`/ready` says 503 and new connections are refused meanwhile); then their connections are cut, the database closes, exit 0',
    },
    PUBLIC_API_URL: {
      type: 'string',
      pattern: '^https?://[^/?#]+(/[^?#]*)?$',
      description:
        "the API's own public address, published as the spec's `servers` (`/openapi.json`, `/openapi.yaml`, `/docs`); unset: `/`, the server that served the document",
    },
  },
  settings: (values, context): ServerSettings => ({
    env: values.NODE_ENV,
    port: values.PORT,
    host: values.HOST,
    logLevel: values.LOG_LEVEL,
    responseValidation: values.RESPONSE_VALIDATION ?? !context.production,
    shutdownTimeoutMs: milliseconds(values.SHUTDOWN_TIMEOUT),
    // Without a trailing slash: the spec's paths begin with one.
    publicApiUrl: values.PUBLIC_API_URL?.replace(/\/+$/, ''),
  }),
});
