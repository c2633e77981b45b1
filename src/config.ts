import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import envSchema from 'env-schema';

/**
 * Every setting of the server, read from the environment in one place, validated by Ajv
 * (through env-schema) and frozen. Nothing else reads process.env.
 */
export interface Config {
  readonly env: 'development' | 'production' | 'test';
  readonly port: number;
  readonly host: string;
  /** Unset: the embedded PGlite database in `dataDir`. */
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
  readonly bcryptCost: number;
  /** Worker threads that run bcrypt, off the event loop. */
  readonly bcryptThreads: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Validate every response against the spec (development and tests; it costs CPU). */
  readonly responseValidation: boolean;
  readonly bodyLimitBytes: number;
  /** Requests a client (by IP address) may make per window to each limited operation. */
  readonly rateLimits: Readonly<Record<RateLimitedOperation, RateLimit>>;
  /** Failed logins an email address may take per window, whatever the client's address. */
  readonly loginLimit: { readonly maxFailures: number; readonly windowSeconds: number };
  /**
   * Which proxies' X-Forwarded-For to believe: false (none), a hop count, or their
   * addresses and CIDR ranges. Never "every address", which lets clients pick their own IP.
   */
  readonly trustProxy: false | number | readonly string[];
  /** Things worth telling the operator at start-up, such as a generated secret. */
  readonly warnings: readonly string[];
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
    HOST: { type: 'string', minLength: 1, default: '0.0.0.0' },
    DATABASE_URL: { type: 'string', pattern: '^postgres(ql)?://' },
    DATA_DIR: { type: 'string', minLength: 1, default: './.data' },
    DB_POOL_MAX: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
    DB_CONNECT_TIMEOUT_MS: { type: 'integer', minimum: 100, default: 5000 },
    DB_STATEMENT_TIMEOUT_MS: { type: 'integer', minimum: 100, default: 10000 },
    JWT_SECRET: { type: 'string', minLength: 32 },
    JWT_EXPIRES_IN: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '15m' },
    JWT_ISSUER: { type: 'string', minLength: 1, default: 'contract-first-api' },
    JWT_AUDIENCE: { type: 'string', minLength: 1, default: 'contract-first-api' },
    BCRYPT_COST: { type: 'integer', minimum: 4, maximum: 15 },
    BCRYPT_THREADS: { type: 'integer', minimum: 1, maximum: 64 },
    LOG_LEVEL: {
      type: 'string',
      enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      default: 'info',
    },
    RESPONSE_VALIDATION: { type: 'boolean' },
    BODY_LIMIT_BYTES: { type: 'integer', minimum: 1024, maximum: 104857600, default: 1048576 },
    RATE_LIMIT_AUTH_MAX: { type: 'integer', minimum: 1 },
    RATE_LIMIT_AUTH_WINDOW: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '1m' },
    ...Object.fromEntries(
      Object.values(rateLimitVariables).map(([name, max]) => [
        name,
        { type: 'integer', minimum: 1, default: max },
      ]),
    ),
    LOGIN_MAX_FAILURES: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
    LOGIN_FAILURE_WINDOW: { type: 'string', pattern: '^[1-9][0-9]*[smhd]?$', default: '15m' },
    TRUST_PROXY: { type: 'string', minLength: 1, default: 'false' },
  },
} as const;

type RawEnv = RawSettings & Record<RateLimitVariable, number>;

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
  BCRYPT_COST?: number;
  BCRYPT_THREADS?: number;
  LOG_LEVEL: Config['logLevel'];
  RESPONSE_VALIDATION?: boolean;
  BODY_LIMIT_BYTES: number;
  RATE_LIMIT_AUTH_MAX?: number;
  RATE_LIMIT_AUTH_WINDOW: string;
  LOGIN_MAX_FAILURES: number;
  LOGIN_FAILURE_WINDOW: string;
  TRUST_PROXY: string;
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

export function loadConfig(source: Record<string, string | undefined>): Config {
  // Empty variables (FOO= in a .env file) mean "not set", not "set to nothing".
  const data = Object.fromEntries(
    Object.entries(source).filter(([, v]) => v !== undefined && v !== ''),
  );
  let raw: RawEnv;
  try {
    // env: false — read only what the caller passes, never process.env behind its back.
    raw = envSchema<RawEnv>({ schema, data, env: false, dotenv: false });
  } catch (error) {
    throw new ConfigError(`Invalid environment: ${(error as Error).message}`);
  }

  const warnings: string[] = [];
  const production = raw.NODE_ENV === 'production';
  let secret = raw.JWT_SECRET;
  if (secret === undefined) {
    if (production) {
      throw new ConfigError(
        'Invalid environment: JWT_SECRET is required (at least 32 characters) when NODE_ENV=production',
      );
    }
    secret = randomBytes(48).toString('base64url');
    warnings.push(
      'JWT_SECRET is not set: using a random secret, so tokens stop working when the server restarts.',
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
    // bcrypt's cost doubles the work per step: 12 in production, cheaper where speed matters more.
    bcryptCost: raw.BCRYPT_COST ?? (production ? 12 : raw.NODE_ENV === 'test' ? 4 : 10),
    // One core stays for the event loop; one thread at least, however small the machine.
    bcryptThreads: raw.BCRYPT_THREADS ?? Math.max(1, availableParallelism() - 1),
    logLevel: raw.LOG_LEVEL,
    responseValidation: raw.RESPONSE_VALIDATION ?? !production,
    bodyLimitBytes: raw.BODY_LIMIT_BYTES,
    rateLimits: rateLimitsOf(raw),
    loginLimit: Object.freeze({
      maxFailures: raw.LOGIN_MAX_FAILURES,
      windowSeconds: parseDuration(raw.LOGIN_FAILURE_WINDOW),
    }),
    trustProxy: parseTrustProxy(raw.TRUST_PROXY),
    warnings: Object.freeze(warnings),
  });
}
