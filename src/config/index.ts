/**
 * Every setting of the server, read from the environment in one place, validated by Ajv
 * once and frozen. Nothing else reads process.env. Each area of the settings (server.ts,
 * database.ts, auth.ts, …) holds its variables' schema, its rules and its part of `Config`.
 */
import { existsSync } from 'node:fs';
import { adminArea, type AdminSettings } from './admin.js';
import { combine, ConfigError, type ConfigPurpose, type Context, type Report } from './area.js';
import { authArea, type AuthSettings } from './auth.js';
import { cacheArea, type CacheSettings } from './cache.js';
import { databaseArea, type DatabaseSettings } from './database.js';
import { emailArea, type EmailSettings } from './email.js';
import { httpArea, type HttpSettings } from './http.js';
import { jobsArea, type JobsSettings } from './jobs.js';
import { limitsArea, type LimitsSettings } from './limits.js';
import { liveArea, type LiveSettings } from './live.js';
import { metricsArea, type MetricsSettings } from './metrics.js';
import { areas, properties, validateEnvironment, type EnvValues } from './schema.js';
import { securityArea, type SecuritySettings } from './security.js';
import { serverArea, type ServerSettings } from './server.js';
import { webhooksArea, type WebhooksSettings } from './webhooks.js';

export { ConfigError, parseDuration, type ConfigPurpose } from './area.js';
export type { RateLimit, RateLimitedOperation } from './limits.js';

export interface Config
  extends
    ServerSettings,
    DatabaseSettings,
    AuthSettings,
    EmailSettings,
    HttpSettings,
    SecuritySettings,
    LimitsSettings,
    MetricsSettings,
    JobsSettings,
    AdminSettings,
    WebhooksSettings,
    LiveSettings,
    CacheSettings {
  /** Things worth telling the operator at start-up, such as a generated secret. */
  readonly warnings: readonly string[];
}

/**
 * The name of every environment variable the server reads (what deployment files may
 * set: tests/deploy checks theirs against this list).
 */
export const environmentVariables: readonly string[] = Object.freeze(Object.keys(properties));

/** The variables of each area, with their schemas: what docs/configuration.md lists. */
export const configAreas: readonly { title: string; properties: typeof properties }[] = areas;

/**
 * The process environment, with a `.env` file in the working directory filling in what
 * the environment does not set. For the entry points (server, migrate, seed) only.
 */
export function readEnvironment(): Record<string, string | undefined> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  return process.env;
}

/** Collects the areas' findings; a variable is blamed once (see Report.problem). */
function findings(schemaProblems: Map<string, string>) {
  const problems = [...schemaProblems.values()];
  const blamed = new Set(schemaProblems.keys());
  const warnings: string[] = [];
  const report: Report = {
    problem(variables, message) {
      if (variables.some((name) => blamed.has(name))) return;
      for (const name of variables) blamed.add(name);
      problems.push(message);
    },
    warning(message) {
      warnings.push(message);
    },
  };
  return { problems, warnings, report };
}

/**
 * The settings, or one ConfigError that lists every problem of the environment: the
 * schema's and the areas' rules' together.
 */
export function loadConfig(
  source: Record<string, string | undefined>,
  purpose: ConfigPurpose = 'server',
): Config {
  // Empty variables (FOO= in a .env file) mean "not set", not "set to nothing".
  const values: Record<string, unknown> = Object.fromEntries(
    Object.entries(source).filter(([, v]) => v !== undefined && v !== ''),
  );
  const { problems, warnings, report } = findings(validateEnvironment(values));
  const env = values as unknown as EnvValues;
  const context: Context = {
    purpose,
    env: env.NODE_ENV,
    production: env.NODE_ENV === 'production',
    embedded: env.DATABASE_URL === undefined,
    port: env.PORT,
  };
  const config: Config = combine(
    serverArea.settings(env, context, report),
    databaseArea.settings(env, context, report),
    authArea.settings(env, context, report),
    emailArea.settings(env, context, report),
    httpArea.settings(env, context, report),
    securityArea.settings(env, context, report),
    limitsArea.settings(env, context, report),
    metricsArea.settings(env, context, report),
    jobsArea.settings(env, context, report),
    adminArea.settings(env, context, report),
    webhooksArea.settings(env, context, report),
    liveArea.settings(env, context, report),
    cacheArea.settings(env, context, report),
    { warnings: Object.freeze(warnings) },
  );
  if (problems.length > 0) throw ConfigError.of(problems);
  return Object.freeze(config);
}
