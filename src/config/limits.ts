import { defineArea, durationPattern, parseDuration, type ValuesOf } from './area.js';

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

export interface LimitsSettings {
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
}

/**
 * The per-IP limit of one operation. The defaults are loose enough for an office or a campus
 * behind one address (whose people mistype passwords too); guessing one account's password
 * is stopped by the per-account limit (LOGIN_MAX_FAILURES), not by these.
 */
const perClient = (max: number, description: string) =>
  ({ type: 'integer', minimum: 1, default: max, description }) as const;

const properties = {
  RATE_LIMIT_LOGIN_MAX: perClient(
    100,
    'logins a client IP may make per window, on a counter of their own; more get 429 with `Retry-After`',
  ),
  RATE_LIMIT_SIGNUP_MAX: perClient(30, 'the same for sign-ups'),
  RATE_LIMIT_REFRESH_TOKEN_MAX: perClient(60, 'the same for token refreshes'),
  RATE_LIMIT_REQUEST_PASSWORD_RESET_MAX: perClient(10, 'the same for password-reset requests'),
  RATE_LIMIT_RESET_PASSWORD_MAX: perClient(10, 'the same for password resets'),
  RATE_LIMIT_VERIFY_EMAIL_MAX: perClient(20, 'the same for email verifications'),
  RATE_LIMIT_RESEND_VERIFICATION_MAX: perClient(5, 'the same for resent verification emails'),
  RATE_LIMIT_CHANGE_PASSWORD_MAX: perClient(10, 'the same for password changes'),
  RATE_LIMIT_AUTH_WINDOW: {
    type: 'string',
    pattern: durationPattern,
    default: '1m',
    description: 'the window of all the per-IP limits above',
  },
  RATE_LIMIT_AUTH_MAX: {
    type: 'integer',
    minimum: 1,
    description:
      'raises every per-IP limit above, and `RATE_LIMIT_MAX`, to at least this value, never lowering one (for load tests sent from one address)',
  },
  RATE_LIMIT_MAX: {
    type: 'integer',
    minimum: 0,
    default: 3000,
    description:
      "requests a client IP may make to all the API's operations together per window, on top of the limits above; the probes and the documentation are not counted; `0`: no such limit",
  },
  RATE_LIMIT_WINDOW: {
    type: 'string',
    pattern: durationPattern,
    default: '1m',
    description: 'the window of `RATE_LIMIT_MAX`',
  },
  REDIS_URL: {
    type: 'string',
    pattern: '^rediss?://',
    description:
      "`redis://…` or `rediss://…`: the rate-limit counts are kept there, shared by every instance (fail open when it is unreachable); unset: in each instance's memory",
  },
  REDIS_KEY_PREFIX: {
    type: 'string',
    pattern: '^[A-Za-z0-9._:-]{1,100}$',
    default: 'cfa:',
    description:
      "the prefix of this deployment's keys in Redis (letters, digits, `. _ : -`), so several deployments can share one",
  },
  MAX_EVENT_LOOP_DELAY_MS: {
    type: 'integer',
    minimum: 0,
    default: 1000,
    description:
      'load shedding: past this mean event-loop delay (over a second), API operations answer 503 `OVERLOADED` with `Retry-After`; `0`: not checked',
  },
  MAX_EVENT_LOOP_UTILIZATION: {
    type: 'number',
    minimum: 0,
    maximum: 1,
    default: 0,
    description:
      'the same past this event-loop utilisation (0 to 1, such as `0.98`); `0`: not checked',
  },
  MAX_HEAP_USED_BYTES: {
    type: 'integer',
    minimum: 0,
    default: 0,
    description: 'the same past this V8 heap in use (bytes); `0`: not checked',
  },
  LOGIN_MAX_FAILURES: {
    type: 'integer',
    minimum: 1,
    maximum: 1000,
    default: 10,
    description:
      'failed logins one email address may have per window, whatever the client IP; then its logins get 429 with `Retry-After` until the window ends',
  },
  LOGIN_FAILURE_WINDOW: {
    type: 'string',
    pattern: durationPattern,
    default: '15m',
    description: 'the window of `LOGIN_MAX_FAILURES`',
  },
} as const;

/** Each limited operation's variable. */
const rateLimitVariables = {
  login: 'RATE_LIMIT_LOGIN_MAX',
  createUser: 'RATE_LIMIT_SIGNUP_MAX',
  refreshToken: 'RATE_LIMIT_REFRESH_TOKEN_MAX',
  requestPasswordReset: 'RATE_LIMIT_REQUEST_PASSWORD_RESET_MAX',
  resetPassword: 'RATE_LIMIT_RESET_PASSWORD_MAX',
  verifyEmail: 'RATE_LIMIT_VERIFY_EMAIL_MAX',
  resendVerification: 'RATE_LIMIT_RESEND_VERIFICATION_MAX',
  changePassword: 'RATE_LIMIT_CHANGE_PASSWORD_MAX',
} as const satisfies Record<RateLimitedOperation, keyof typeof properties>;

/**
 * The per-IP limits: each operation's own variable, all on RATE_LIMIT_AUTH_WINDOW.
 * RATE_LIMIT_AUTH_MAX, when set, raises every one of them to at least its value (load
 * tests send from one address); it never lowers one.
 */
function rateLimitsOf(values: ValuesOf<typeof properties>): LimitsSettings['rateLimits'] {
  const windowSeconds = parseDuration(values.RATE_LIMIT_AUTH_WINDOW);
  const floor = values.RATE_LIMIT_AUTH_MAX ?? 0;
  const entries = (Object.keys(rateLimitVariables) as RateLimitedOperation[]).map((operation) => {
    const max = Math.max(values[rateLimitVariables[operation]], floor);
    return [operation, Object.freeze({ max, windowSeconds })] as const;
  });
  return Object.freeze(Object.fromEntries(entries) as Record<RateLimitedOperation, RateLimit>);
}

export const limitsArea = defineArea({
  title: 'Rate limits and load shedding',
  properties,
  settings: (values): LimitsSettings => ({
    rateLimits: rateLimitsOf(values),
    globalRateLimit:
      values.RATE_LIMIT_MAX === 0
        ? null
        : Object.freeze({
            // RATE_LIMIT_AUTH_MAX (load tests from one address) raises this one too.
            max: Math.max(values.RATE_LIMIT_MAX, values.RATE_LIMIT_AUTH_MAX ?? 0),
            windowSeconds: parseDuration(values.RATE_LIMIT_WINDOW),
          }),
    redis:
      values.REDIS_URL === undefined
        ? null
        : Object.freeze({ url: values.REDIS_URL, keyPrefix: values.REDIS_KEY_PREFIX }),
    overload: Object.freeze({
      maxEventLoopDelayMs: values.MAX_EVENT_LOOP_DELAY_MS,
      maxEventLoopUtilization: values.MAX_EVENT_LOOP_UTILIZATION,
      maxHeapUsedBytes: values.MAX_HEAP_USED_BYTES,
    }),
    loginLimit: Object.freeze({
      maxFailures: values.LOGIN_MAX_FAILURES,
      windowSeconds: parseDuration(values.LOGIN_FAILURE_WINDOW),
    }),
  }),
});
