/**
 * What every area of the configuration is made of: the JSON schema of its environment
 * variables, and the function that turns their validated values into its part of `Config`,
 * checking the rules that involve more than one variable.
 */

export class ConfigError extends Error {
  override name = 'ConfigError';
  /** Every problem found, one sentence each; the message lists them all. */
  readonly problems: readonly string[];

  constructor(message: string, problems: readonly string[] = [message]) {
    super(message);
    this.problems = Object.freeze([...problems]);
  }

  /**
   * One error for all of them, so that a wrong environment takes one round to fix. One per
   * line: the sentences have commas and semicolons of their own, and some are long enough to
   * wrap in a terminal, where a line each keeps them apart.
   */
  static of(problems: readonly string[]): ConfigError {
    const message =
      problems.length === 1
        ? `Invalid environment: ${problems[0]}`
        : `Invalid environment, ${problems.length} problems:\n- ${problems.join('\n- ')}`;
    return new ConfigError(message, problems);
  }
}

/**
 * What the settings are for: the API server (the default), or a database script (db:migrate,
 * db:seed, db:studio), which signs no token and sends no link, so needs neither JWT_SECRET
 * nor PUBLIC_URL wherever it runs.
 */
export type ConfigPurpose = 'server' | 'script';

/**
 * One environment variable's JSON schema. `description` and `x-default` are what
 * docs/configuration.md shows (scripts/config-table.ts); `x-default` says what an unset
 * variable means when that depends on other settings, so no `default` can say it.
 */
export interface EnvProperty {
  readonly type: 'string' | 'integer' | 'number' | 'boolean';
  readonly description: string;
  readonly default?: string | number | boolean;
  readonly 'x-default'?: string;
  readonly enum?: readonly string[];
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly pattern?: string;
  readonly format?: 'email';
}

export type EnvProperties = Readonly<Record<string, EnvProperty>>;

type ValueOf<P extends EnvProperty> = P extends { enum: readonly (infer E)[] }
  ? E
  : P['type'] extends 'integer' | 'number'
    ? number
    : P['type'] extends 'boolean'
      ? boolean
      : string;

/**
 * The values Ajv leaves for these properties: coerced to their types; present when the
 * schema has a default, possibly missing otherwise.
 */
export type ValuesOf<P extends EnvProperties> = {
  readonly [K in keyof P as P[K] extends { default: unknown } ? K : never]: ValueOf<P[K]>;
} & {
  readonly [K in keyof P as P[K] extends { default: unknown } ? never : K]?: ValueOf<P[K]>;
};

export type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (
  x: infer I,
) => void
  ? I
  : never;

/**
 * The areas' parts of `Config` as one object. Object.assign rather than nine spreads in a
 * literal, which V8 copied at three times the cost.
 */
export function combine<const T extends readonly object[]>(
  ...parts: T
): UnionToIntersection<T[number]> {
  return Object.assign({}, ...parts) as UnionToIntersection<T[number]>;
}

/** The few facts about the whole environment that more than one area's rules depend on. */
export interface Context {
  readonly purpose: ConfigPurpose;
  readonly env: 'development' | 'production' | 'test';
  readonly production: boolean;
  /** DATABASE_URL is unset: the embedded PostgreSQL server, which one process owns. */
  readonly embedded: boolean;
  readonly port: number;
}

/** Where an area's rules report what is wrong and what is worth a warning. */
export interface Report {
  /**
   * A problem with these variables, unless one of them is blamed already (by the schema or
   * another rule): a value the schema refused was replaced by its default, or unset, so that
   * the rules could run, and a second message would be about a value nobody set.
   */
  problem(variables: readonly string[], message: string): void;
  warning(message: string): void;
}

export interface Area<P extends EnvProperties, S> {
  /** The heading of this area's variables in docs/configuration.md. */
  readonly title: string;
  readonly properties: P;
  readonly settings: (values: ValuesOf<P>, context: Context, report: Report) => S;
}

/** Infers an area's types from its schema and its settings function. */
export function defineArea<const P extends EnvProperties, S>(area: Area<P, S>): Area<P, S> {
  return area;
}

/** Whole seconds with an optional unit: '900', '45s', '15m', '2h', '7d'. */
export const durationPattern = '^[1-9][0-9]*[smhd]?$';

const unitSeconds = { s: 1, m: 60, h: 3600, d: 86400 } as const;

/** '900' or '900s' → 900, '15m' → 900, '2h' → 7200, '7d' → 604800. */
export function parseDuration(text: string): number {
  const match = /^([1-9][0-9]*)([smhd]?)$/.exec(text);
  if (!match) throw new ConfigError(`not a duration: ${text}`);
  const unit = (match[2] || 's') as keyof typeof unitSeconds;
  return Number(match[1]) * unitSeconds[unit];
}

export const milliseconds = (duration: string): number => parseDuration(duration) * 1000;
