import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS; its default export arrives wrapped under ESM interop.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

/**
 * Every setting of the server, read from the environment in one place, validated by Ajv
 * and frozen. Nothing else reads process.env.
 */
export interface Config {
  readonly env: 'development' | 'production' | 'test';
  readonly port: number;
  /** 127.0.0.1 unless HOST says otherwise: the image and the deployment files set 0.0.0.0. */
  readonly host: string;
  /** Unset: the embedded PostgreSQL server on `dataDir`. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly db: {
    readonly poolMax: number;
    readonly connectTimeoutMs: number;
    readonly statementTimeoutMs: number;
  };
  readonly jwt: {
    readonly secret: string;
    readonly expiresInSeconds: number;
    readonly issuer: string;
    readonly audience: string;
  };
  readonly sessions: {
    /** A session's absolute lifetime from its login: its refresh tokens die with it. */
    readonly refreshTokenTtlSeconds: number;
    /** A session not refreshed for this long is over. */
    readonly idleTimeoutSeconds: number;
    /** How long after its exchange a refresh token may be retried (a lost response). */
    readonly reuseGraceSeconds: number;
  };
  /**
   * The PostgreSQL text search configuration of posts' full-text search ('simple': words as
   * written, no stemming; 'english', 'portuguese', …: stemmed and without stop words).
   */
  readonly searchLanguage: string;
  readonly bcryptCost: number;
  /** Worker threads that run bcrypt, off the event loop. */
  readonly bcryptThreads: number;
  /** How much lower the bcrypt threads' CPU priority is than the event loop's (nice). */
  readonly bcryptNice: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Validate every response against the spec (development and tests; it costs CPU). */
  readonly responseValidation: boolean;
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
  /**
   * How long a shutdown (SIGTERM, SIGINT) waits for the requests in flight before it cuts
   * their connections.
   */
  readonly shutdownTimeoutMs: number;
  /** The origins browsers may call the API from (CORS); empty: none but the API's own. */
  readonly corsOrigins: readonly string[];
  /** Strict-Transport-Security's max-age; undefined: the header is not sent. */
  readonly hstsMaxAgeSeconds: number | undefined;
  /** Requests a client (by IP address) may make per window to each limited operation. */
  readonly rateLimits: Readonly<Record<RateLimitedOperation, RateLimit>>;
  /**
   * Requests a client (by IP address) may make per window to the API's operations all
   * together, on top of the per-operation limits; null: no such limit (RATE_LIMIT_MAX=0).
   * The probes and the documentation are not counted.
   */
  readonly globalRateLimit: RateLimit | null;
  /**
   * Where the rate-limit counters live: unset, in each process's memory; a Redis URL, in
   * that Redis, shared by every instance (keys begin with `keyPrefix`, so several
   * deployments can share one Redis).
   */
  readonly redis: { readonly url: string; readonly keyPrefix: string } | null;
  /**
   * Load shedding: past any of these, API operations answer 503 OVERLOADED (the probes
   * never do); 0 turns a check off. The event loop's delay is the mean over a second.
   */
  readonly overload: {
    readonly maxEventLoopDelayMs: number;
    readonly maxEventLoopUtilization: number;
    readonly maxHeapUsedBytes: number;
  };
  /** Failed logins an email address may take per window, whatever the client's address. */
  readonly loginLimit: { readonly maxFailures: number; readonly windowSeconds: number };
  /**
   * Which proxies' X-Forwarded-For to believe: false (none), a hop count, or their
   * addresses and CIDR ranges. Never "every address", which lets clients pick their own IP.
   */
  readonly trustProxy: false | number | readonly string[];
  /**
   * The `servers` URL of the published spec (/openapi.json, /openapi.yaml, /docs): the API's
   * public address, without a trailing slash; undefined: `/`, the server that serves it.
   */
  readonly publicApiUrl: string | undefined;
  /** Emails (password resets, address verification) and their delivery. */
  readonly email: {
    /** Unset: emails are written to the log instead of being sent. */
    readonly smtpUrl: string | undefined;
    readonly from: string;
    /** The base of every link in an email; never taken from a request's Host. */
    readonly publicUrl: string;
    /**
     * Whether the log, standing in for SMTP, shows the emails' links (credentials): by
     * default only with the embedded database outside production (EMAIL_LOG_LINKS).
     */
    readonly logLinks: boolean;
    readonly passwordResetTtlSeconds: number;
    readonly verificationTtlSeconds: number;
    /** How often the delivery loop looks for due emails; 0: only when told to (tests). */
    readonly pollIntervalMs: number;
    /** Failed attempts after which an email is given up on (dead). */
    readonly maxAttempts: number;
  };
  /**
   * Metrics in the Prometheus format (src/http/metrics.ts), served on a port of their own
   * (METRICS_PORT, bound to METRICS_HOST, outside the API: no token), and/or on the API's
   * port as GET /metrics to a scraper that sends `Authorization: Bearer <METRICS_TOKEN>`.
   * With neither set nothing is measured and /metrics answers 404.
   */
  readonly metrics: {
    readonly port: number | undefined;
    /** 127.0.0.1 by default; 0.0.0.0 where the scraper comes from outside (a pod's IP). */
    readonly host: string;
    readonly token: string | undefined;
  };
  /** Things worth telling the operator at start-up, such as a generated secret. */
  readonly warnings: readonly string[];
  /**
   * The admin account made sure of at every start (created, or promoted if it exists);
   * null when ADMIN_EMAIL and ADMIN_PASSWORD are unset.
   */
  readonly admin: {
    readonly email: string;
    readonly password: string;
    /** Unset: made from the email address's local part. */
    readonly username: string | undefined;
  } | null;
}

/** The operations limited per client IP, each on a counter of its own. */
export type RateLimitedOperation =
  | 'login'
  | 'createUser'
  | 'refreshToken'
  | 'requestPasswordReset'
  | 'resetPassword'
  | 'verifyEmail'
  | 'resendVerification'
  | 'changePassword';

export interface RateLimit {
  readonly max: number;
  readonly windowSeconds: number;
}

/**
 * Each limited operation's variable and default, per client IP and RATE_LIMIT_AUTH_WINDOW.
 * Loose enough for an office or a campus behind one address (whose people mistype
 * passwords too); guessing one account's password is stopped by the per-account limit
 * (LOGIN_MAX_FAILURES), not by these.
 */
const rateLimitVariables = {
  login: ['RATE_LIMIT_LOGIN_MAX', 100],
  createUser: ['RATE_LIMIT_SIGNUP_MAX', 30],
  refreshToken: ['RATE_LIMIT_REFRESH_TOKEN_MAX', 60],
  requestPasswordReset: ['RATE_LIMIT_REQUEST_PASSWORD_RESET_MAX', 10],
  resetPassword: ['RATE_LIMIT_RESET_PASSWORD_MAX', 10],
  verifyEmail: ['RATE_LIMIT_VERIFY_EMAIL_MAX', 20],
  resendVerification: ['RATE_LIMIT_RESEND_VERIFICATION_MAX', 5],
  changePassword: ['RATE_LIMIT_CHANGE_PASSWORD_MAX', 10],
} as const satisfies Record<RateLimitedOperation, readonly [string, number]>;

type RateLimitVariable = (typeof rateLimitVariables)[RateLimitedOperation][0];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const schema = {
  type: 'object',
  properties: {
    NODE_ENV: {
      type: 'string',
      enum: ['development', 'production', 'test'],
      default: 'development',
    },
    PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 3333 },
    HOST: { type: 'string', minLength: 1, default: '127.0.0.1' },
    DATABASE_URL: { type: 'string', pattern: '^postgres(ql)?://' },
    DATA_DIR: { type: 'string', minLength: 1, default: './.data' },
    DB_POOL_MAX: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
    DB_CONNECT_TIMEOUT_MS: { type: 'integer', minimum: 100, default: 5000 },
    DB_STATEMENT_TIMEOUT_MS: { type: 'integer', minimum: 100, default: 10000 },
    JWT_SECRET: { type: 'string', minLength: 32 },
    JWT_EXPIRES_IN: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '15m' },
    JWT_ISSUER: { type: 'string', minLength: 1, default: 'contract-first-api' },
    JWT_AUDIENCE: { type: 'string', minLength: 1, default: 'contract-first-api' },
    REFRESH_TOKEN_TTL: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '30d' },
    SESSION_IDLE_TIMEOUT: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '7d' },
    REFRESH_REUSE_GRACE: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '10s' },
    BCRYPT_COST: { type: 'integer', minimum: 4, maximum: 15 },
    BCRYPT_THREADS: { type: 'integer', minimum: 1, maximum: 64 },
    BCRYPT_NICE: { type: 'integer', minimum: 0, maximum: 19, default: 10 },
    SEARCH_LANGUAGE: { type: 'string', pattern: '^[a-z][a-z0-9_]{0,62}$', default: 'simple' },
    LOG_LEVEL: {
      type: 'string',
      enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      default: 'info',
    },
    RESPONSE_VALIDATION: { type: 'boolean' },
    BODY_LIMIT_BYTES: { type: 'integer', minimum: 1024, maximum: 104857600, default: 1048576 },
    REQUEST_TIMEOUT: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '30s' },
    HEADERS_TIMEOUT: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '10s' },
    CONNECTION_TIMEOUT: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '60s' },
    KEEP_ALIVE_TIMEOUT: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '72s' },
    MAX_HEADER_SIZE: { type: 'integer', minimum: 1024, maximum: 65536, default: 16384 },
    SHUTDOWN_TIMEOUT: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '10s' },
    CORS_ORIGINS: { type: 'string', minLength: 1 },
    HSTS_MAX_AGE: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$' },
    RATE_LIMIT_AUTH_MAX: { type: 'integer', minimum: 1 },
    RATE_LIMIT_AUTH_WINDOW: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '1m' },
    RATE_LIMIT_MAX: { type: 'integer', minimum: 0, default: 3000 },
    RATE_LIMIT_WINDOW: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '1m' },
    REDIS_URL: { type: 'string', pattern: '^rediss?://' },
    REDIS_KEY_PREFIX: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,100}$', default: 'cfa:' },
    MAX_EVENT_LOOP_DELAY_MS: { type: 'integer', minimum: 0, default: 1000 },
    MAX_EVENT_LOOP_UTILIZATION: { type: 'number', minimum: 0, maximum: 1, default: 0 },
    MAX_HEAP_USED_BYTES: { type: 'integer', minimum: 0, default: 0 },
    ...Object.fromEntries(
      Object.values(rateLimitVariables).map(([name, max]) => [
        name,
        { type: 'integer', minimum: 1, default: max },
      ]),
    ),
    LOGIN_MAX_FAILURES: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
    LOGIN_FAILURE_WINDOW: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '15m' },
    TRUST_PROXY: { type: 'string', minLength: 1, default: 'false' },
    SMTP_URL: { type: 'string', pattern: '^smtps?://' },
    EMAIL_FROM: {
      type: 'string',
      minLength: 3,
      default: 'Contract-first API <no-reply@localhost>',
    },
    PUBLIC_URL: { type: 'string', pattern: '^https?://[^/?#]+(/[^?#]*)?$' },
    PUBLIC_API_URL: { type: 'string', pattern: '^https?://[^/?#]+(/[^?#]*)?$' },
    PASSWORD_RESET_TTL: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '30m' },
    EMAIL_VERIFICATION_TTL: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '48h' },
    EMAIL_POLL_INTERVAL: { type: 'string', pattern: '^(0|[1-9][0-9]*[smhd]?)$', default: '2s' },
    EMAIL_LOG_LINKS: { type: 'boolean' },
    EMAIL_MAX_ATTEMPTS: { type: 'integer', minimum: 1, maximum: 100, default: 12 },
    METRICS_PORT: { type: 'integer', minimum: 0, maximum: 65535 },
    METRICS_HOST: { type: 'string', minLength: 1 },
    // Characters a bearer token may have (RFC 6750's b64token), and long enough not to guess.
    METRICS_TOKEN: {
      type: 'string',
      minLength: 32,
      maxLength: 512,
      pattern: '^[A-Za-z0-9._~+/-]+=*$',
    },
    // The same rules as the API's Email, Password and Username (openapi.yaml).
    ADMIN_EMAIL: { type: 'string', format: 'email', maxLength: 254 },
    ADMIN_PASSWORD: { type: 'string', minLength: 8, maxLength: 72 },
    ADMIN_USERNAME: { type: 'string', minLength: 3, maxLength: 50, pattern: '^[A-Za-z0-9_.-]+$' },
  },
} as const;

/**
 * The name of every environment variable the server reads (what deployment files may
 * set: tests/deploy checks theirs against this list).
 */
export const environmentVariables: readonly string[] = Object.freeze(
  Object.keys(schema.properties),
);

type RawEnv = RawSettings & Record<RateLimitVariable, number>;

/**
 * Ajv itself, as env-schema would configure it (text coerced to the declared types,
 * defaults filled in, unknown variables dropped), without env-schema: importing it compiled
 * a draft-07 meta-schema for its own options, and each call built and checked a second
 * instance, 120 ms of every start. This instance does not check the schema against the
 * meta-schema (config.test.ts compiles it and runs every rule).
 */
const envAjv = new Ajv2020({
  strict: true,
  allErrors: true,
  coerceTypes: true,
  useDefaults: true,
  removeAdditional: true,
  allowUnionTypes: true,
  validateSchema: false,
});
addFormats(envAjv, ['email']);
let validateEnv: ValidateFunction | undefined;

interface RawSettings {
  NODE_ENV: Config['env'];
  PORT: number;
  HOST: string;
  DATABASE_URL?: string;
  DATA_DIR: string;
  DB_POOL_MAX: number;
  DB_CONNECT_TIMEOUT_MS: number;
  DB_STATEMENT_TIMEOUT_MS: number;
  JWT_SECRET?: string;
  JWT_EXPIRES_IN: string;
  JWT_ISSUER: string;
  JWT_AUDIENCE: string;
  REFRESH_TOKEN_TTL: string;
  SESSION_IDLE_TIMEOUT: string;
  REFRESH_REUSE_GRACE: string;
  BCRYPT_COST?: number;
  BCRYPT_THREADS?: number;
  BCRYPT_NICE: number;
  SEARCH_LANGUAGE: string;
  LOG_LEVEL: Config['logLevel'];
  RESPONSE_VALIDATION?: boolean;
  BODY_LIMIT_BYTES: number;
  REQUEST_TIMEOUT: string;
  HEADERS_TIMEOUT: string;
  CONNECTION_TIMEOUT: string;
  KEEP_ALIVE_TIMEOUT: string;
  MAX_HEADER_SIZE: number;
  SHUTDOWN_TIMEOUT: string;
  CORS_ORIGINS?: string;
  HSTS_MAX_AGE?: string;
  RATE_LIMIT_AUTH_MAX?: number;
  RATE_LIMIT_AUTH_WINDOW: string;
  RATE_LIMIT_MAX: number;
  RATE_LIMIT_WINDOW: string;
  REDIS_URL?: string;
  REDIS_KEY_PREFIX: string;
  MAX_EVENT_LOOP_DELAY_MS: number;
  MAX_EVENT_LOOP_UTILIZATION: number;
  MAX_HEAP_USED_BYTES: number;
  LOGIN_MAX_FAILURES: number;
  LOGIN_FAILURE_WINDOW: string;
  TRUST_PROXY: string;
  SMTP_URL?: string;
  EMAIL_FROM: string;
  PUBLIC_URL?: string;
  PUBLIC_API_URL?: string;
  PASSWORD_RESET_TTL: string;
  EMAIL_VERIFICATION_TTL: string;
  EMAIL_POLL_INTERVAL: string;
  EMAIL_LOG_LINKS?: boolean;
  EMAIL_MAX_ATTEMPTS: number;
  METRICS_PORT?: number;
  METRICS_HOST?: string;
  METRICS_TOKEN?: string;
  ADMIN_EMAIL?: string;
  ADMIN_PASSWORD?: string;
  ADMIN_USERNAME?: string;
}

const unitSeconds = { s: 1, m: 60, h: 3600, d: 86400 } as const;

/** '900' or '900s' → 900, '15m' → 900, '2h' → 7200, '7d' → 604800. */
export function parseDuration(text: string): number {
  const match = /^([1-9][0-9]*)([smhd]?)$/.exec(text);
  if (!match) throw new ConfigError(`not a duration: ${text}`);
  const unit = (match[2] || 's') as keyof typeof unitSeconds;
  return Number(match[1]) * unitSeconds[unit];
}

/**
 * The process environment, with a `.env` file in the working directory filling in what
 * the environment does not set. For the entry points (server, migrate, seed) only.
 */
export function readEnvironment(): Record<string, string | undefined> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  return process.env;
}

/** An IP address, or a CIDR range: an address and a prefix length its family allows. */
function isAddressOrRange(entry: string): boolean {
  const [address = '', prefix, ...rest] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^[0-9]{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

/**
 * TRUST_PROXY: `false` (the default: X-Forwarded-For is ignored), a number of proxy hops
 * in front of the server, or a comma-separated list of proxy addresses and CIDR ranges.
 */
export function parseTrustProxy(text: string): false | number | readonly string[] {
  const value = text.trim();
  if (value === 'false') return false;
  if (/^[0-9]+$/.test(value)) {
    const hops = Number(value);
    if (hops >= 1 && hops <= 10) return hops;
  } else if (value !== 'true') {
    const entries = value.split(',').map((entry) => entry.trim());
    if (entries.every(isAddressOrRange)) {
      return Object.freeze(entries);
    }
  }
  throw new ConfigError(
    `Invalid environment: TRUST_PROXY must be false, a number of proxy hops (1 to 10), or the proxies' addresses or CIDR ranges, comma-separated (got ${JSON.stringify(text)}). "true" would trust every address, so any client could choose its own IP.`,
  );
}

/**
 * CORS_ORIGINS: origins (`https://app.example.com`, a port when not the default one),
 * comma-separated. Never `*`: a browser page from any site could then read the answers.
 */
export function parseCorsOrigins(text: string | undefined): readonly string[] {
  if (text === undefined) return Object.freeze([]);
  const origins = text.split(',').map((entry) => entry.trim());
  for (const origin of origins) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.origin !== origin) {
      throw new ConfigError(
        `Invalid environment: CORS_ORIGINS must list origins such as https://app.example.com (a scheme, a host and a port when not the default one; no path, no trailing slash, no "*"), comma-separated (got ${JSON.stringify(origin)}).`,
      );
    }
  }
  return Object.freeze(origins);
}

/** The HTTP server's timeouts; Node refuses a headers timeout longer than the request's. */
function httpLimitsOf(raw: RawEnv): Config['http'] {
  const requestTimeoutMs = parseDuration(raw.REQUEST_TIMEOUT) * 1000;
  const headersTimeoutMs = parseDuration(raw.HEADERS_TIMEOUT) * 1000;
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new ConfigError(
      'Invalid environment: HEADERS_TIMEOUT must not be longer than REQUEST_TIMEOUT (the headers are part of the request).',
    );
  }
  return Object.freeze({
    requestTimeoutMs,
    headersTimeoutMs,
    connectionTimeoutMs: parseDuration(raw.CONNECTION_TIMEOUT) * 1000,
    keepAliveTimeoutMs: parseDuration(raw.KEEP_ALIVE_TIMEOUT) * 1000,
    maxHeaderSize: raw.MAX_HEADER_SIZE,
  });
}

/** ADMIN_EMAIL and ADMIN_PASSWORD go together; the password is never part of a message. */
function adminAccount(raw: RawEnv): Config['admin'] {
  const { ADMIN_EMAIL: email, ADMIN_PASSWORD: password, ADMIN_USERNAME: username } = raw;
  if (email === undefined && password === undefined) {
    if (username !== undefined) {
      throw new ConfigError(
        'Invalid environment: ADMIN_USERNAME needs ADMIN_EMAIL and ADMIN_PASSWORD.',
      );
    }
    return null;
  }
  if (email === undefined || password === undefined) {
    throw new ConfigError(
      'Invalid environment: ADMIN_EMAIL and ADMIN_PASSWORD must be set together (or neither).',
    );
  }
  if (Buffer.byteLength(password, 'utf8') > 72) {
    throw new ConfigError(
      'Invalid environment: ADMIN_PASSWORD must be at most 72 bytes in UTF-8 (the limit of bcrypt).',
    );
  }
  return Object.freeze({ email, password, username });
}

/** METRICS_*: a listener of their own needs a port other than the API's. */
function metricsOf(raw: RawEnv): Config['metrics'] {
  if (raw.METRICS_PORT === undefined && raw.METRICS_HOST !== undefined) {
    throw new ConfigError('Invalid environment: METRICS_HOST needs METRICS_PORT.');
  }
  if (raw.METRICS_PORT !== undefined && raw.METRICS_PORT !== 0 && raw.METRICS_PORT === raw.PORT) {
    throw new ConfigError(
      "Invalid environment: METRICS_PORT must differ from PORT (the metrics listener is a server of its own; METRICS_TOKEN serves them on the API's port).",
    );
  }
  return Object.freeze({
    port: raw.METRICS_PORT,
    host: raw.METRICS_HOST ?? '127.0.0.1',
    token: raw.METRICS_TOKEN,
  });
}

/**
 * The per-IP limits: each operation's own variable, all on RATE_LIMIT_AUTH_WINDOW.
 * RATE_LIMIT_AUTH_MAX, when set, raises every one of them to at least its value (load
 * tests send from one address); it never lowers one.
 */
function rateLimitsOf(raw: RawEnv): Config['rateLimits'] {
  const windowSeconds = parseDuration(raw.RATE_LIMIT_AUTH_WINDOW);
  const floor = raw.RATE_LIMIT_AUTH_MAX ?? 0;
  const entries = (Object.keys(rateLimitVariables) as RateLimitedOperation[]).map((operation) => {
    const max = Math.max(raw[rateLimitVariables[operation][0]], floor);
    return [operation, Object.freeze({ max, windowSeconds })] as const;
  });
  return Object.freeze(Object.fromEntries(entries) as Record<RateLimitedOperation, RateLimit>);
}

/**
 * What the settings are for: the API server (the default), or a database script (db:migrate,
 * db:seed, db:studio), which signs no token and sends no link, so needs neither JWT_SECRET
 * nor PUBLIC_URL wherever it runs.
 */
export type ConfigPurpose = 'server' | 'script';

export function loadConfig(
  source: Record<string, string | undefined>,
  purpose: ConfigPurpose = 'server',
): Config {
  // Empty variables (FOO= in a .env file) mean "not set", not "set to nothing".
  const data = Object.fromEntries(
    Object.entries(source).filter(([, v]) => v !== undefined && v !== ''),
  );
  // Ajv converts the text values to the schema's types and fills in defaults, in place.
  const values: Record<string, unknown> = { ...data };
  const validate = (validateEnv ??= envAjv.compile(schema));
  if (!validate(values)) {
    throw new ConfigError(
      `Invalid environment: ${envAjv.errorsText(validate.errors, { dataVar: 'env' })}`,
    );
  }
  const raw = values as unknown as RawEnv;

  const warnings: string[] = [];
  const production = raw.NODE_ENV === 'production';
  const embedded = raw.DATABASE_URL === undefined;
  let secret = raw.JWT_SECRET;
  if (secret === undefined) {
    // A random secret logs everyone out at every restart and differs between instances:
    // tolerable only for the embedded database, which one process on one machine owns.
    if ((production || !embedded) && purpose === 'server') {
      throw new ConfigError(
        `Invalid environment: JWT_SECRET is required (at least 32 characters) ${production ? 'when NODE_ENV=production' : 'with DATABASE_URL, whatever NODE_ENV'}; only the embedded database (DATABASE_URL unset) outside production runs with a random one.`,
      );
    }
    secret = randomBytes(48).toString('base64url');
    if (purpose === 'server') {
      warnings.push(
        'JWT_SECRET is not set: using a random secret, so tokens stop working when the server restarts.',
      );
    }
  }
  if (production && raw.PUBLIC_URL === undefined && purpose === 'server') {
    throw new ConfigError(
      'Invalid environment: PUBLIC_URL is required when NODE_ENV=production (the base of the links in emails, such as https://app.example.com); without it they would point at localhost.',
    );
  }
  const logLinks = raw.EMAIL_LOG_LINKS ?? (embedded && !production);
  if (raw.SMTP_URL === undefined && logLinks && (production || !embedded)) {
    warnings.push(
      'EMAIL_LOG_LINKS is on: the links of emails (password resets, verifications) are written to the log, where anyone who reads it can use them.',
    );
  }

  return Object.freeze({
    env: raw.NODE_ENV,
    port: raw.PORT,
    host: raw.HOST,
    databaseUrl: raw.DATABASE_URL,
    dataDir: raw.DATA_DIR.startsWith('memory://') ? raw.DATA_DIR : resolve(raw.DATA_DIR),
    db: Object.freeze({
      poolMax: raw.DB_POOL_MAX,
      connectTimeoutMs: raw.DB_CONNECT_TIMEOUT_MS,
      statementTimeoutMs: raw.DB_STATEMENT_TIMEOUT_MS,
    }),
    jwt: Object.freeze({
      secret,
      expiresInSeconds: parseDuration(raw.JWT_EXPIRES_IN),
      issuer: raw.JWT_ISSUER,
      audience: raw.JWT_AUDIENCE,
    }),
    sessions: Object.freeze({
      refreshTokenTtlSeconds: parseDuration(raw.REFRESH_TOKEN_TTL),
      idleTimeoutSeconds: parseDuration(raw.SESSION_IDLE_TIMEOUT),
      reuseGraceSeconds: parseDuration(raw.REFRESH_REUSE_GRACE),
    }),
    // bcrypt's cost doubles the work per step: 12 in production, cheaper where speed matters more.
    bcryptCost: raw.BCRYPT_COST ?? (production ? 12 : raw.NODE_ENV === 'test' ? 4 : 10),
    // One core stays for the event loop; one thread at least, however small the machine.
    bcryptThreads: raw.BCRYPT_THREADS ?? Math.max(1, availableParallelism() - 1),
    bcryptNice: raw.BCRYPT_NICE,
    searchLanguage: raw.SEARCH_LANGUAGE,
    logLevel: raw.LOG_LEVEL,
    responseValidation: raw.RESPONSE_VALIDATION ?? !production,
    bodyLimitBytes: raw.BODY_LIMIT_BYTES,
    http: httpLimitsOf(raw),
    shutdownTimeoutMs: parseDuration(raw.SHUTDOWN_TIMEOUT) * 1000,
    corsOrigins: parseCorsOrigins(raw.CORS_ORIGINS),
    hstsMaxAgeSeconds: raw.HSTS_MAX_AGE === undefined ? undefined : parseDuration(raw.HSTS_MAX_AGE),
    rateLimits: rateLimitsOf(raw),
    globalRateLimit:
      raw.RATE_LIMIT_MAX === 0
        ? null
        : Object.freeze({
            // RATE_LIMIT_AUTH_MAX (load tests from one address) raises this one too.
            max: Math.max(raw.RATE_LIMIT_MAX, raw.RATE_LIMIT_AUTH_MAX ?? 0),
            windowSeconds: parseDuration(raw.RATE_LIMIT_WINDOW),
          }),
    redis:
      raw.REDIS_URL === undefined
        ? null
        : Object.freeze({ url: raw.REDIS_URL, keyPrefix: raw.REDIS_KEY_PREFIX }),
    overload: Object.freeze({
      maxEventLoopDelayMs: raw.MAX_EVENT_LOOP_DELAY_MS,
      maxEventLoopUtilization: raw.MAX_EVENT_LOOP_UTILIZATION,
      maxHeapUsedBytes: raw.MAX_HEAP_USED_BYTES,
    }),
    loginLimit: Object.freeze({
      maxFailures: raw.LOGIN_MAX_FAILURES,
      windowSeconds: parseDuration(raw.LOGIN_FAILURE_WINDOW),
    }),
    trustProxy: parseTrustProxy(raw.TRUST_PROXY),
    // Without a trailing slash: the spec's paths begin with one.
    publicApiUrl: raw.PUBLIC_API_URL?.replace(/\/+$/, ''),
    email: Object.freeze({
      smtpUrl: raw.SMTP_URL,
      from: raw.EMAIL_FROM,
      // Without a trailing slash, so that `${publicUrl}/reset-password` has one.
      publicUrl: (raw.PUBLIC_URL ?? `http://localhost:${raw.PORT}`).replace(/\/+$/, ''),
      logLinks,
      passwordResetTtlSeconds: parseDuration(raw.PASSWORD_RESET_TTL),
      verificationTtlSeconds: parseDuration(raw.EMAIL_VERIFICATION_TTL),
      pollIntervalMs:
        raw.EMAIL_POLL_INTERVAL === '0' ? 0 : parseDuration(raw.EMAIL_POLL_INTERVAL) * 1000,
      maxAttempts: raw.EMAIL_MAX_ATTEMPTS,
    }),
    metrics: metricsOf(raw),
    warnings: Object.freeze(warnings),
    admin: adminAccount(raw),
  });
}
