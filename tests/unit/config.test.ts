import { availableParallelism } from 'node:os';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  configAreas,
  environmentVariables,
  loadConfig,
  parseDuration,
} from '../../src/config/index.js';
import { schema } from '../../src/config/schema.js';

const secret = 'x'.repeat(32);

describe('loadConfig', () => {
  it('has sane defaults for development', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      env: 'development',
      port: 3333,
      // Reachable from this machine only, until HOST says otherwise (the image does).
      host: '127.0.0.1',
      databaseUrl: undefined,
      logLevel: 'info',
      responseValidation: true,
      bodyLimitBytes: 1048576,
      bcryptCost: 10,
      // One core stays for the event loop.
      bcryptThreads: Math.max(1, availableParallelism() - 1),
      bcryptNice: 10,
    });
    expect(config.jwt.expiresInSeconds).toBe(900);
    expect(config.sessions).toEqual({
      refreshTokenTtlSeconds: 30 * 86400,
      idleTimeoutSeconds: 7 * 86400,
      reuseGraceSeconds: 10,
    });
    expect(config.dataDir).toMatch(/\.data$/);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('generates a secret with a warning in development when JWT_SECRET is missing', () => {
    const a = loadConfig({ NODE_ENV: 'development' });
    const b = loadConfig({ NODE_ENV: 'development' });
    expect(a.jwt.secret.length).toBeGreaterThanOrEqual(32);
    expect(a.jwt.secret).not.toBe(b.jwt.secret);
    expect(a.warnings).toEqual([expect.stringMatching(/JWT_SECRET is not set/)]);
  });

  it('requires a JWT_SECRET of 32 characters or more in production', () => {
    const PUBLIC_URL = 'https://app.example.com';
    expect(() => loadConfig({ NODE_ENV: 'production', PUBLIC_URL })).toThrow(ConfigError);
    expect(() => loadConfig({ NODE_ENV: 'production', PUBLIC_URL })).toThrow(
      /JWT_SECRET is required/,
    );
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'short', PUBLIC_URL })).toThrow(
      /JWT_SECRET/,
    );
    const config = loadConfig({ NODE_ENV: 'production', JWT_SECRET: secret, PUBLIC_URL });
    expect(config).toMatchObject({ responseValidation: false, bcryptCost: 12, warnings: [] });
  });

  it('reads and coerces the documented variables', () => {
    const config = loadConfig({
      PORT: '8080',
      HOST: '127.0.0.1',
      DATABASE_URL: 'postgres://u:p@db:5432/app',
      JWT_SECRET: secret,
      JWT_EXPIRES_IN: '2h',
      BCRYPT_COST: '6',
      BCRYPT_THREADS: '3',
      BCRYPT_NICE: '5',
      LOG_LEVEL: 'warn',
      RESPONSE_VALIDATION: 'false',
      DATA_DIR: '/tmp/somewhere',
      RATE_LIMIT_LOGIN_MAX: '5',
      RATE_LIMIT_SIGNUP_MAX: '6',
      RATE_LIMIT_REFRESH_TOKEN_MAX: '7',
      RATE_LIMIT_REQUEST_PASSWORD_RESET_MAX: '8',
      RATE_LIMIT_RESET_PASSWORD_MAX: '9',
      RATE_LIMIT_VERIFY_EMAIL_MAX: '10',
      RATE_LIMIT_RESEND_VERIFICATION_MAX: '11',
      RATE_LIMIT_CHANGE_PASSWORD_MAX: '12',
      RATE_LIMIT_AUTH_WINDOW: '15m',
      LOGIN_MAX_FAILURES: '3',
      LOGIN_FAILURE_WINDOW: '1h',
      TRUST_PROXY: '10.0.0.1, 192.168.0.0/16,fd00::/8',
      REFRESH_TOKEN_TTL: '90d',
      SESSION_IDLE_TIMEOUT: '12h',
      REFRESH_REUSE_GRACE: '30',
    });
    expect(config).toMatchObject({
      port: 8080,
      host: '127.0.0.1',
      databaseUrl: 'postgres://u:p@db:5432/app',
      bcryptCost: 6,
      bcryptThreads: 3,
      bcryptNice: 5,
      logLevel: 'warn',
      responseValidation: false,
      dataDir: '/tmp/somewhere',
      rateLimits: {
        login: { max: 5, windowSeconds: 900 },
        createUser: { max: 6, windowSeconds: 900 },
        refreshToken: { max: 7, windowSeconds: 900 },
        requestPasswordReset: { max: 8, windowSeconds: 900 },
        resetPassword: { max: 9, windowSeconds: 900 },
        verifyEmail: { max: 10, windowSeconds: 900 },
        resendVerification: { max: 11, windowSeconds: 900 },
        changePassword: { max: 12, windowSeconds: 900 },
      },
      loginLimit: { maxFailures: 3, windowSeconds: 3600 },
      trustProxy: ['10.0.0.1', '192.168.0.0/16', 'fd00::/8'],
      sessions: {
        refreshTokenTtlSeconds: 90 * 86400,
        idleTimeoutSeconds: 43200,
        reuseGraceSeconds: 30,
      },
    });
    expect(config.jwt).toMatchObject({ secret, expiresInSeconds: 7200 });
  });

  it('limits each auth operation per client IP, loosely enough for an office', () => {
    const perMinute = (max: number) => ({ max, windowSeconds: 60 });
    expect(loadConfig({}).rateLimits).toEqual({
      login: perMinute(100),
      createUser: perMinute(30),
      refreshToken: perMinute(60),
      requestPasswordReset: perMinute(10),
      resetPassword: perMinute(10),
      verifyEmail: perMinute(20),
      resendVerification: perMinute(5),
      changePassword: perMinute(10),
    });
  });

  it('limits failed logins per email address: 10 in 15 minutes by default', () => {
    expect(loadConfig({}).loginLimit).toEqual({ maxFailures: 10, windowSeconds: 900 });
  });

  it('raises every per-IP limit to RATE_LIMIT_AUTH_MAX, never lowering one', () => {
    const { rateLimits } = loadConfig({
      RATE_LIMIT_AUTH_MAX: '50',
      RATE_LIMIT_SIGNUP_MAX: '40',
      RATE_LIMIT_REFRESH_TOKEN_MAX: '70',
      RATE_LIMIT_AUTH_WINDOW: '2m',
    });
    expect(rateLimits.login).toEqual({ max: 100, windowSeconds: 120 });
    expect(rateLimits.createUser).toEqual({ max: 50, windowSeconds: 120 });
    expect(rateLimits.refreshToken).toEqual({ max: 70, windowSeconds: 120 });
    expect(rateLimits.resendVerification).toEqual({ max: 50, windowSeconds: 120 });
    expect(Object.isFrozen(rateLimits)).toBe(true);
    expect(Object.isFrozen(rateLimits.login)).toBe(true);
  });

  it('limits every client IP to 3000 API requests a minute by default; RATE_LIMIT_MAX=0 turns it off', () => {
    expect(loadConfig({}).globalRateLimit).toEqual({ max: 3000, windowSeconds: 60 });
    expect(loadConfig({ RATE_LIMIT_MAX: '20', RATE_LIMIT_WINDOW: '1h' }).globalRateLimit).toEqual({
      max: 20,
      windowSeconds: 3600,
    });
    expect(loadConfig({ RATE_LIMIT_MAX: '0' }).globalRateLimit).toBeNull();
    // RATE_LIMIT_AUTH_MAX (load tests from one address) raises it too, never lowers it.
    expect(loadConfig({ RATE_LIMIT_AUTH_MAX: '5000' }).globalRateLimit?.max).toBe(5000);
    expect(loadConfig({ RATE_LIMIT_AUTH_MAX: '50' }).globalRateLimit?.max).toBe(3000);
  });

  it('keeps rate-limit counts in memory unless REDIS_URL is set', () => {
    expect(loadConfig({}).redis).toBeNull();
    expect(loadConfig({ REDIS_URL: 'redis://cache:6379/2' }).redis).toEqual({
      url: 'redis://cache:6379/2',
      keyPrefix: 'cfa:',
    });
    expect(
      loadConfig({ REDIS_URL: 'rediss://cache:6380', REDIS_KEY_PREFIX: 'blog-prod:' }).redis,
    ).toEqual({ url: 'rediss://cache:6380', keyPrefix: 'blog-prod:' });
  });

  it('sheds load past a mean event-loop delay of a second by default; 0 turns a check off', () => {
    expect(loadConfig({}).overload).toEqual({
      maxEventLoopDelayMs: 1000,
      maxEventLoopUtilization: 0,
      maxHeapUsedBytes: 0,
    });
    expect(
      loadConfig({
        MAX_EVENT_LOOP_DELAY_MS: '0',
        MAX_EVENT_LOOP_UTILIZATION: '0.98',
        MAX_HEAP_USED_BYTES: '1073741824',
      }).overload,
    ).toEqual({
      maxEventLoopDelayMs: 0,
      maxEventLoopUtilization: 0.98,
      maxHeapUsedBytes: 1073741824,
    });
  });

  it('takes TRUST_PROXY as none, a hop count or a list of proxies, never everyone', () => {
    expect(loadConfig({}).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: '2' }).trustProxy).toBe(2);
    expect(loadConfig({ TRUST_PROXY: '::1' }).trustProxy).toEqual(['::1']);
    expect(() => loadConfig({ TRUST_PROXY: 'true' })).toThrow(/any client could choose its own IP/);
  });

  it('bounds slow clients by default: timeouts and a header size limit', () => {
    expect(loadConfig({}).http).toEqual({
      requestTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      connectionTimeoutMs: 60_000,
      keepAliveTimeoutMs: 72_000,
      maxHeaderSize: 16384,
    });
    const set = loadConfig({
      REQUEST_TIMEOUT: '2m',
      HEADERS_TIMEOUT: '20s',
      CONNECTION_TIMEOUT: '5m',
      KEEP_ALIVE_TIMEOUT: '65s',
      MAX_HEADER_SIZE: '8192',
    }).http;
    expect(set).toEqual({
      requestTimeoutMs: 120_000,
      headersTimeoutMs: 20_000,
      connectionTimeoutMs: 300_000,
      keepAliveTimeoutMs: 65_000,
      maxHeaderSize: 8192,
    });
    expect(() => loadConfig({ REQUEST_TIMEOUT: '0' })).toThrow(ConfigError);
    expect(() => loadConfig({ MAX_HEADER_SIZE: '100' })).toThrow(ConfigError);
    expect(() => loadConfig({ REQUEST_TIMEOUT: '5s', HEADERS_TIMEOUT: '10s' })).toThrow(
      /HEADERS_TIMEOUT must not be longer than REQUEST_TIMEOUT/,
    );
  });

  it('takes CORS_ORIGINS as a list of origins, none by default, never "*"', () => {
    expect(loadConfig({}).corsOrigins).toEqual([]);
    expect(
      loadConfig({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' }).corsOrigins,
    ).toEqual(['https://app.example.com', 'http://localhost:5173']);
    for (const value of [
      '*',
      'https://app.example.com/',
      'https://app.example.com/path',
      'app.example.com',
      'ftp://example.com',
      'https://APP.example.com',
      'https://app.example.com:443',
      'https://a.example.com,,https://b.example.com',
    ]) {
      expect(() => loadConfig({ CORS_ORIGINS: value }), value).toThrow(/CORS_ORIGINS/);
    }
  });

  it('serves no metrics by default; METRICS_PORT on 127.0.0.1 unless METRICS_HOST, METRICS_TOKEN long', () => {
    expect(loadConfig({}).metrics).toEqual({
      port: undefined,
      host: '127.0.0.1',
      token: undefined,
    });
    const token = 'a'.repeat(32);
    expect(
      loadConfig({ METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0', METRICS_TOKEN: token }).metrics,
    ).toEqual({ port: 9464, host: '0.0.0.0', token });
    expect(() => loadConfig({ METRICS_HOST: '0.0.0.0' })).toThrow(
      /METRICS_HOST needs METRICS_PORT/,
    );
    expect(() => loadConfig({ PORT: '9464', METRICS_PORT: '9464' })).toThrow(/METRICS_PORT/);
    for (const value of ['a'.repeat(31), `${'a'.repeat(32)} b`, `${'a'.repeat(32)}\n`]) {
      expect(() => loadConfig({ METRICS_TOKEN: value }), value).toThrow(/METRICS_TOKEN/);
    }
  });

  it('waits 10 s for the requests in flight at shutdown unless SHUTDOWN_TIMEOUT says otherwise', () => {
    expect(loadConfig({}).shutdownTimeoutMs).toBe(10_000);
    expect(loadConfig({ SHUTDOWN_TIMEOUT: '25s' }).shutdownTimeoutMs).toBe(25_000);
    expect(() => loadConfig({ SHUTDOWN_TIMEOUT: '0' })).toThrow(ConfigError);
  });

  it('sends HSTS only when HSTS_MAX_AGE is set', () => {
    expect(loadConfig({}).hstsMaxAgeSeconds).toBeUndefined();
    expect(loadConfig({ HSTS_MAX_AGE: '365d' }).hstsMaxAgeSeconds).toBe(365 * 86400);
    expect(() => loadConfig({ HSTS_MAX_AGE: '0' })).toThrow(ConfigError);
  });

  it('takes PUBLIC_API_URL as an http(s) address without a trailing slash, unset by default', () => {
    expect(loadConfig({}).publicApiUrl).toBeUndefined();
    expect(loadConfig({ PUBLIC_API_URL: 'https://api.example.com/' }).publicApiUrl).toBe(
      'https://api.example.com',
    );
    expect(loadConfig({ PUBLIC_API_URL: 'http://example.com/api//' }).publicApiUrl).toBe(
      'http://example.com/api',
    );
    for (const value of ['/api', 'api.example.com', 'ftp://example.com', 'https://x/?q=1']) {
      expect(() => loadConfig({ PUBLIC_API_URL: value }), value).toThrow(/PUBLIC_API_URL/);
    }
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ PORT: '', DATABASE_URL: '' })).toMatchObject({
      port: 3333,
      databaseUrl: undefined,
    });
  });

  it.each([
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['DATABASE_URL', 'mysql://x'],
    ['JWT_EXPIRES_IN', '15 minutes'],
    ['REFRESH_TOKEN_TTL', '1 month'],
    ['SESSION_IDLE_TIMEOUT', '0'],
    ['REFRESH_REUSE_GRACE', '-5s'],
    ['BCRYPT_COST', '3'],
    ['BCRYPT_COST', '16'],
    ['BCRYPT_THREADS', '0'],
    ['BCRYPT_NICE', '20'],
    ['SEARCH_LANGUAGE', 'English'],
    ['SEARCH_LANGUAGE', "simple'; drop table posts; --"],
    ['TRUST_PROXY', 'true'],
    ['TRUST_PROXY', '0'],
    ['TRUST_PROXY', 'loadbalancer'],
    ['TRUST_PROXY', '10.0.0.1,'],
    ['TRUST_PROXY', '10.0.0.0/33'],
    ['LOG_LEVEL', 'loud'],
    ['RATE_LIMIT_LOGIN_MAX', '0'],
    ['RATE_LIMIT_SIGNUP_MAX', 'many'],
    ['RATE_LIMIT_AUTH_MAX', '0'],
    ['RATE_LIMIT_MAX', '-1'],
    ['RATE_LIMIT_WINDOW', '1 minute'],
    ['REDIS_URL', 'http://cache:6379'],
    ['REDIS_KEY_PREFIX', 'a prefix with spaces'],
    ['MAX_EVENT_LOOP_DELAY_MS', '-5'],
    ['MAX_EVENT_LOOP_UTILIZATION', '1.5'],
    ['MAX_HEAP_USED_BYTES', 'lots'],
    ['LOGIN_MAX_FAILURES', '0'],
    ['LOGIN_FAILURE_WINDOW', '15 minutes'],
    ['NODE_ENV', 'staging'],
  ])('refuses %s=%s with a message naming it', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(name));
  });
});

describe('secrets, links and addresses by mode', () => {
  const DATABASE_URL = 'postgres://app@db:5432/app';
  const PUBLIC_URL = 'https://app.example.com';

  it('makes up a JWT secret only for the embedded database, outside production', () => {
    for (const NODE_ENV of ['development', 'test']) {
      expect(loadConfig({ NODE_ENV }).jwt.secret.length).toBeGreaterThanOrEqual(32);
      // With a real database, every NODE_ENV, the default one included.
      expect(() => loadConfig({ NODE_ENV, DATABASE_URL }), NODE_ENV).toThrow(
        /JWT_SECRET is required .*with DATABASE_URL/,
      );
    }
    expect(() => loadConfig({ DATABASE_URL })).toThrow(ConfigError);
    expect(() => loadConfig({ NODE_ENV: 'production', PUBLIC_URL })).toThrow(
      /JWT_SECRET is required/,
    );
    expect(() => loadConfig({ NODE_ENV: 'production', DATABASE_URL, PUBLIC_URL })).toThrow(
      /JWT_SECRET is required/,
    );
    const config = loadConfig({ DATABASE_URL, JWT_SECRET: secret });
    expect(config.jwt.secret).toBe(secret);
    expect(config.warnings).toEqual([]);
  });

  it('asks neither JWT_SECRET nor PUBLIC_URL of a database script, which signs and sends nothing', () => {
    const config = loadConfig({ NODE_ENV: 'production', DATABASE_URL }, 'script');
    expect(config.databaseUrl).toBe(DATABASE_URL);
    expect(config.warnings).toEqual([]);
    expect(() => loadConfig({ NODE_ENV: 'production', DATABASE_URL })).toThrow(
      /JWT_SECRET is required/,
    );
  });

  it('requires PUBLIC_URL in production, where links to localhost would be wrong', () => {
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: secret })).toThrow(
      /PUBLIC_URL is required when NODE_ENV=production/,
    );
    expect(
      loadConfig({ NODE_ENV: 'production', JWT_SECRET: secret, PUBLIC_URL: `${PUBLIC_URL}/` }).email
        .publicUrl,
    ).toBe(PUBLIC_URL);
    // Elsewhere the links point at the server itself.
    expect(loadConfig({ PORT: '8080' }).email.publicUrl).toBe('http://localhost:8080');
  });

  it('writes email links to the log only with the embedded database, or when EMAIL_LOG_LINKS says so', () => {
    const production = { NODE_ENV: 'production', JWT_SECRET: secret, PUBLIC_URL };
    expect(loadConfig({}).email.logLinks).toBe(true);
    expect(loadConfig({ NODE_ENV: 'test' }).email.logLinks).toBe(true);
    expect(loadConfig({ DATABASE_URL, JWT_SECRET: secret }).email.logLinks).toBe(false);
    expect(loadConfig({ ...production, DATABASE_URL }).email.logLinks).toBe(false);
    expect(loadConfig(production).email.logLinks).toBe(false);
    expect(loadConfig({ EMAIL_LOG_LINKS: 'false' }).email.logLinks).toBe(false);

    const explicit = loadConfig({ DATABASE_URL, JWT_SECRET: secret, EMAIL_LOG_LINKS: 'true' });
    expect(explicit.email.logLinks).toBe(true);
    expect(explicit.warnings).toEqual([expect.stringMatching(/EMAIL_LOG_LINKS is on/)]);
    // Nothing goes to the log when emails are sent.
    expect(
      loadConfig({
        DATABASE_URL,
        JWT_SECRET: secret,
        EMAIL_LOG_LINKS: 'true',
        SMTP_URL: 'smtp://mail:587',
      }).warnings,
    ).toEqual([]);
    expect(() => loadConfig({ EMAIL_LOG_LINKS: 'maybe' })).toThrow(/EMAIL_LOG_LINKS/);
  });

  it('gives up on an email after 12 failed attempts unless EMAIL_MAX_ATTEMPTS says otherwise', () => {
    expect(loadConfig({}).email.maxAttempts).toBe(12);
    expect(loadConfig({ EMAIL_MAX_ATTEMPTS: '3' }).email.maxAttempts).toBe(3);
    for (const value of ['0', '101', 'many']) {
      expect(() => loadConfig({ EMAIL_MAX_ATTEMPTS: value }), value).toThrow(/EMAIL_MAX_ATTEMPTS/);
    }
  });

  it('listens on 127.0.0.1 unless HOST says otherwise', () => {
    expect(loadConfig({}).host).toBe('127.0.0.1');
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: secret, PUBLIC_URL }).host).toBe(
      '127.0.0.1',
    );
    expect(loadConfig({ HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
    expect(loadConfig({ HOST: '::' }).host).toBe('::');
  });
});

describe('the first admin (ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_USERNAME)', () => {
  const password = 'the admin password';

  it('is null when neither is set', () => {
    expect(loadConfig({}).admin).toBeNull();
  });

  it('takes the email address and the password together, the username when set', () => {
    expect(loadConfig({ ADMIN_EMAIL: 'boss@example.com', ADMIN_PASSWORD: password }).admin).toEqual(
      { email: 'boss@example.com', password, username: undefined },
    );
    expect(
      loadConfig({
        ADMIN_EMAIL: 'boss@example.com',
        ADMIN_PASSWORD: password,
        ADMIN_USERNAME: 'chief',
      }).admin?.username,
    ).toBe('chief');
  });

  it.each([
    [{ ADMIN_EMAIL: 'boss@example.com' }, /ADMIN_EMAIL and ADMIN_PASSWORD must be set together/],
    [{ ADMIN_PASSWORD: password }, /ADMIN_EMAIL and ADMIN_PASSWORD must be set together/],
    [{ ADMIN_USERNAME: 'chief' }, /ADMIN_USERNAME needs ADMIN_EMAIL and ADMIN_PASSWORD/],
    [{ ADMIN_EMAIL: 'not an email', ADMIN_PASSWORD: password }, /ADMIN_EMAIL/],
    [{ ADMIN_EMAIL: 'boss@example.com', ADMIN_PASSWORD: 'short' }, /ADMIN_PASSWORD/],
    [{ ADMIN_EMAIL: 'boss@example.com', ADMIN_PASSWORD: 'x'.repeat(73) }, /ADMIN_PASSWORD/],
    // 40 characters, 80 bytes: over what bcrypt reads.
    [{ ADMIN_EMAIL: 'boss@example.com', ADMIN_PASSWORD: 'é'.repeat(40) }, /at most 72 bytes/],
    [
      { ADMIN_EMAIL: 'boss@example.com', ADMIN_PASSWORD: password, ADMIN_USERNAME: 'no spaces' },
      /ADMIN_USERNAME/,
    ],
  ] as Array<[Record<string, string>, RegExp]>)(
    'refuses %o, saying why, never showing the password',
    (env, message) => {
      expect(() => loadConfig(env)).toThrow(message);
      try {
        loadConfig(env);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        if (env.ADMIN_PASSWORD) expect((error as Error).message).not.toContain(env.ADMIN_PASSWORD);
      }
    },
  );
});

describe('one error for the whole environment', () => {
  /** The ConfigError loadConfig throws for `env`. */
  function refusal(env: Record<string, string>): ConfigError {
    try {
      loadConfig(env);
    } catch (error) {
      if (error instanceof ConfigError) return error;
      throw error;
    }
    throw new Error('loadConfig accepted it');
  }

  it("lists every problem, the schema's and the rules' together, one per line", () => {
    const error = refusal({
      NODE_ENV: 'production',
      PORT: 'eighty',
      LOG_LEVEL: 'loud',
      JWT_EXPIRES_IN: '15 minutes',
      REQUEST_TIMEOUT: '5s',
      HEADERS_TIMEOUT: '10s',
      TRUST_PROXY: 'true',
      METRICS_HOST: '0.0.0.0',
      ADMIN_EMAIL: 'boss@example.com',
    });
    const named = [
      'PORT',
      'LOG_LEVEL',
      'JWT_EXPIRES_IN',
      'JWT_SECRET is required',
      'PUBLIC_URL is required',
      'HEADERS_TIMEOUT must not be longer than REQUEST_TIMEOUT',
      'TRUST_PROXY',
      'METRICS_HOST needs METRICS_PORT',
      'ADMIN_EMAIL and ADMIN_PASSWORD must be set together',
    ];
    expect(error.problems).toHaveLength(named.length);
    named.forEach((words, index) => expect(error.problems[index]).toContain(words));
    const [heading, ...lines] = error.message.split('\n');
    expect(heading).toBe(`Invalid environment, ${named.length} problems:`);
    expect(lines).toEqual(error.problems.map((problem) => `- ${problem}`));
  });

  it('says what the value should look like, not only the pattern it broke', () => {
    expect(refusal({ JWT_EXPIRES_IN: '15 minutes' }).message).toBe(
      'Invalid environment: JWT_EXPIRES_IN must be a duration: a whole number of seconds, or one with a unit (45s, 15m, 2h, 7d).',
    );
    expect(refusal({ NODE_ENV: 'staging' }).problems).toEqual([
      'NODE_ENV must be one of development, production, test.',
    ]);
  });

  it('names each variable once, however many rules it breaks', () => {
    // Too short, and so as good as missing in production: one problem, not two.
    const secret = refusal({
      NODE_ENV: 'production',
      JWT_SECRET: 'short',
      PUBLIC_URL: 'https://a.example',
    });
    expect(secret.problems).toEqual(['JWT_SECRET must NOT have fewer than 32 characters.']);
    const token = refusal({ METRICS_TOKEN: 'a b' });
    expect(token.problems).toHaveLength(1);
    expect(token.problems[0]).toMatch(
      /^METRICS_TOKEN must NOT have fewer than 32 characters and must match/,
    );
    // A refused timeout is not compared with the other one.
    expect(refusal({ REQUEST_TIMEOUT: '0', HEADERS_TIMEOUT: '40s' }).problems).toEqual([
      expect.stringMatching(/^REQUEST_TIMEOUT must be a duration/),
    ]);
  });

  it('never shows a refused value that may be a secret', () => {
    const error = refusal({
      DATABASE_URL: 'mysql://app:hunter2-db@db/app',
      SMTP_URL: 'mail://user:hunter2-smtp@mail',
      JWT_SECRET: 'hunter2-jwt',
      ADMIN_EMAIL: 'boss@example.com',
      ADMIN_PASSWORD: 'hunter2',
    });
    expect(error.problems.length).toBeGreaterThanOrEqual(4);
    expect(error.message).not.toMatch(/hunter2/);
  });
});

describe('the schema of every area', () => {
  it('is valid against the JSON Schema 2020-12 meta-schema', () => {
    // loadConfig's Ajv skips this check (validateSchema: false) to start faster.
    const ajv = new Ajv2020({ strict: true, keywords: ['x-default'] });
    expect(ajv.validateSchema(schema), ajv.errorsText()).toBe(true);
  });

  it('describes every variable, each in one area', () => {
    const names = configAreas.flatMap((area) => Object.keys(area.properties));
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(environmentVariables);
    for (const area of configAreas) {
      for (const [name, property] of Object.entries(area.properties)) {
        expect(property.description.length, name).toBeGreaterThan(10);
        // What an unset variable means is said once: by its default or in words.
        expect(property.default === undefined || property['x-default'] === undefined, name).toBe(
          true,
        );
      }
    }
  });
});

describe('parseDuration', () => {
  it.each([
    ['900', 900],
    ['45s', 45],
    ['15m', 900],
    ['2h', 7200],
    ['7d', 604800],
  ])('%s is %i seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it('refuses anything else', () => {
    expect(() => parseDuration('0')).toThrow(ConfigError);
    expect(() => parseDuration('1w')).toThrow(ConfigError);
  });
});
