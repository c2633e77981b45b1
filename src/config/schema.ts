import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { adminArea } from './admin.js';
import {
  durationPattern,
  type Area,
  type EnvProperties,
  type EnvProperty,
  type UnionToIntersection,
  type ValuesOf,
} from './area.js';
import { authArea } from './auth.js';
import { databaseArea } from './database.js';
import { emailArea } from './email.js';
import { httpArea } from './http.js';
import { jobsArea } from './jobs.js';
import { limitsArea } from './limits.js';
import { liveArea } from './live.js';
import { cacheArea } from './cache.js';
import { metricsArea } from './metrics.js';
import { securityArea } from './security.js';
import { serverArea } from './server.js';
import { webhooksArea } from './webhooks.js';

// ajv-formats is CommonJS; its default export arrives wrapped under ESM interop.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

/** The areas in the order docs/configuration.md lists them. */
export const areas = [
  serverArea,
  databaseArea,
  authArea,
  emailArea,
  httpArea,
  securityArea,
  limitsArea,
  metricsArea,
  jobsArea,
  adminArea,
  webhooksArea,
  liveArea,
  cacheArea,
] as const;

type ValuesOfArea<A> = A extends Area<infer P, unknown> ? ValuesOf<P> : never;

/** Every variable's value after validation: Ajv's coercion and defaults applied. */
export type EnvValues = UnionToIntersection<ValuesOfArea<(typeof areas)[number]>>;

/** Every variable's schema, by its name; a name belongs to one area (config.test.ts). */
export const properties: Readonly<Record<string, EnvProperty>> = Object.assign(
  {},
  ...areas.map((area): EnvProperties => area.properties),
) as Record<string, EnvProperty>;

/** One schema for the whole environment, so that it is compiled and run once. */
export const schema = { type: 'object', properties } as const;

/**
 * Ajv itself, as env-schema would configure it (text coerced to the declared types,
 * defaults filled in), without env-schema: importing it compiled a draft-07 meta-schema for
 * its own options, and each call built and checked a second instance, 120 ms of every start.
 * removeAdditional drops nothing here (no `additionalProperties: false`): the other
 * variables stay in loadConfig's copy of the environment, which nothing else reads. This
 * instance does not check the schema against the meta-schema (config.test.ts compiles it
 * and runs every rule). `x-default` is declared so that strict mode accepts it.
 */
const envAjv = new Ajv2020({
  strict: true,
  allErrors: true,
  coerceTypes: true,
  useDefaults: true,
  removeAdditional: true,
  allowUnionTypes: true,
  validateSchema: false,
  keywords: ['x-default'],
  // The validator runs once per process: Ajv's optimising pass over the generated code took
  // about a third of the compile time and cannot save as much when the code runs once.
  code: { optimize: false },
});
addFormats(envAjv, ['email']);
let validateEnv: ValidateFunction | undefined;

/** Ajv's message, in words for the mistakes people make most. */
function wordsFor(error: ErrorObject): string {
  if (error.keyword === 'pattern' && error.params.pattern === durationPattern) {
    return 'must be a duration: a whole number of seconds, or one with a unit (45s, 15m, 2h, 7d)';
  }
  if (error.keyword === 'enum') {
    const allowed = (error.params as { allowedValues: unknown[] }).allowedValues;
    return `must be one of ${allowed.join(', ')}`;
  }
  return error.message ?? error.keyword;
}

/**
 * Validates `values` in place (coerced, defaults filled in) and says what is wrong, one
 * sentence per variable. A refused variable is given its default (or unset) so that the
 * areas' rules can still run and find the other problems.
 */
export function validateEnvironment(values: Record<string, unknown>): Map<string, string> {
  const validate = (validateEnv ??= envAjv.compile(schema));
  const refused = new Map<string, string[]>();
  if (!validate(values)) {
    for (const error of validate.errors ?? []) {
      const name = error.instancePath.slice(1);
      refused.set(name, [...(refused.get(name) ?? []), wordsFor(error)]);
    }
  }
  const problems = new Map<string, string>();
  for (const [name, words] of refused) {
    problems.set(name, `${name} ${words.join(' and ')}.`);
    const fallback = properties[name]?.default;
    if (fallback === undefined) delete values[name];
    else values[name] = fallback;
  }
  return problems;
}
