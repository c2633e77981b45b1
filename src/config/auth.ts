import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { defineArea, durationPattern, parseDuration, type Context, type Report } from './area.js';

export interface AuthSettings {
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
  readonly bcryptCost: number;
  /** Worker threads that run bcrypt, off the event loop. */
  readonly bcryptThreads: number;
  /** How much lower the bcrypt threads' CPU priority is than the event loop's (nice). */
  readonly bcryptNice: number;
}

/**
 * JWT_SECRET, or a random one where that is tolerable. A random secret logs everyone out at
 * every restart and differs between instances: tolerable only for the embedded database,
 * which one process on one machine owns.
 */
function jwtSecret(secret: string | undefined, context: Context, report: Report): string {
  if (secret !== undefined) return secret;
  if (context.purpose === 'server') {
    if (context.production || !context.embedded) {
      report.problem(
        ['JWT_SECRET'],
        `JWT_SECRET is required (at least 32 characters) ${context.production ? 'when NODE_ENV=production' : 'with DATABASE_URL, whatever NODE_ENV'}; only the embedded database (DATABASE_URL unset) outside production runs with a random one.`,
      );
    } else {
      report.warning(
        'JWT_SECRET is not set: using a random secret, so tokens stop working when the server restarts.',
      );
    }
  }
  return randomBytes(48).toString('base64url');
}

export const authArea = defineArea({
  title: 'Tokens, sessions and passwords',
  properties: {
    JWT_SECRET: {
      type: 'string',
      minLength: 32,
      'x-default': 'random (embedded database outside production)',
      description:
        'HS256 secret, 32+ characters; **required in production and with a `DATABASE_URL`** (whatever `NODE_ENV`; the database scripts, which sign nothing, need it nowhere); only the embedded database outside production runs with a random one, made at each start',
    },
    JWT_EXPIRES_IN: {
      type: 'string',
      pattern: durationPattern,
      default: '15m',
      description: 'access-token lifetime (`900`, `45s`, `15m`, `2h`, `7d`)',
    },
    JWT_ISSUER: {
      type: 'string',
      minLength: 1,
      default: 'contract-first-api',
      description: '`iss` of the tokens, checked on every request',
    },
    JWT_AUDIENCE: {
      type: 'string',
      minLength: 1,
      default: 'contract-first-api',
      description: '`aud` of the tokens, checked on every request',
    },
    REFRESH_TOKEN_TTL: {
      type: 'string',
      pattern: durationPattern,
      default: '30d',
      description:
        "a session's absolute lifetime from its login: no refresh token of it works after that",
    },
    SESSION_IDLE_TIMEOUT: {
      type: 'string',
      pattern: durationPattern,
      default: '7d',
      description: 'a session not refreshed for this long is over (its access tokens too)',
    },
    REFRESH_REUSE_GRACE: {
      type: 'string',
      pattern: durationPattern,
      default: '10s',
      description:
        'a used refresh token presented again ends its session, except a retry within this time of its exchange',
    },
    BCRYPT_COST: {
      type: 'integer',
      minimum: 4,
      maximum: 15,
      'x-default': '12 / 10 / 4',
      description: 'password hashing cost in production / development / test',
    },
    BCRYPT_THREADS: {
      type: 'integer',
      minimum: 1,
      maximum: 64,
      'x-default': 'cores − 1 (at least 1)',
      description:
        'worker threads that hash and check passwords, so logins never stall other requests; a hash of a lower cost is redone at the next login',
    },
    BCRYPT_NICE: {
      type: 'integer',
      minimum: 0,
      maximum: 19,
      default: 10,
      description:
        "how much lower the bcrypt threads' CPU priority is than the event loop's (nice, 0 to 19; Linux): when the CPU is short, logins wait and other requests do not",
    },
  },
  settings: (values, context, report): AuthSettings => ({
    jwt: Object.freeze({
      secret: jwtSecret(values.JWT_SECRET, context, report),
      expiresInSeconds: parseDuration(values.JWT_EXPIRES_IN),
      issuer: values.JWT_ISSUER,
      audience: values.JWT_AUDIENCE,
    }),
    sessions: Object.freeze({
      refreshTokenTtlSeconds: parseDuration(values.REFRESH_TOKEN_TTL),
      idleTimeoutSeconds: parseDuration(values.SESSION_IDLE_TIMEOUT),
      reuseGraceSeconds: parseDuration(values.REFRESH_REUSE_GRACE),
    }),
    // bcrypt's cost doubles the work per step: 12 in production, cheaper where speed matters more.
    bcryptCost: values.BCRYPT_COST ?? (context.production ? 12 : context.env === 'test' ? 4 : 10),
    // One core stays for the event loop; one thread at least, however small the machine.
    bcryptThreads: values.BCRYPT_THREADS ?? Math.max(1, availableParallelism() - 1),
    bcryptNice: values.BCRYPT_NICE,
  }),
});
