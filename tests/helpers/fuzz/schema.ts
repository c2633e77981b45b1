import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { ValidateFunction } from 'ajv';
import fc from 'fast-check';

const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

/**
 * The subset of JSON Schema (2020-12, as OpenAPI 3.1 writes it) that the spec's request
 * inputs use, and what the fuzzer derives from it: arbitraries of valid values, and for
 * each constraint a way to break it.
 */
export interface JsonSchema {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  minProperties?: number;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  default?: unknown;
}

/** Where a value goes: text in a header, the query or the path, or a JSON body. */
export type Channel = 'json' | 'query' | 'path' | 'header';

/**
 * Real values to mix into the generated ones (ids of existing resources, live tokens), by
 * JSON pointer within the input: each arbitrary yields them as they are.
 */
export type Hints = (pointer: string) => fc.Arbitrary<unknown> | undefined;

const INT32 = { min: -(2 ** 31), max: 2 ** 31 - 1 };

export class SchemaKit {
  private readonly ajv: Ajv2020;
  private readonly validators = new Map<JsonSchema, ValidateFunction>();

  /** `root`: the bundled spec, whose `#/components/…` the $refs point into. */
  constructor(private readonly root: object) {
    this.ajv = new Ajv2020({
      strict: false,
      validateSchema: false,
      allErrors: false,
      allowUnionTypes: true,
    });
    addFormats(this.ajv);
    // As the server (src/http/validation.ts): the bare RFC 4122 form only.
    this.ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
    this.ajv.addSchema(root, 'spec');
  }

  /** The schema with its $ref (and its target's, in turn) followed. */
  resolve(schema: JsonSchema): JsonSchema {
    if (schema.$ref === undefined) return schema;
    const { $ref, ...rest } = schema;
    if (!$ref.startsWith('#/')) throw new Error(`fuzz: only local $refs are followed: ${$ref}`);
    const target = $ref
      .slice(2)
      .split('/')
      .map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce<unknown>((node, token) => (node as Record<string, unknown>)[token], this.root);
    if (target === undefined) throw new Error(`fuzz: $ref ${$ref} points nowhere`);
    return { ...this.resolve(target as JsonSchema), ...rest };
  }

  /** Whether `value` is valid against `schema` (the spec's own $refs resolved). */
  isValid(schema: JsonSchema, value: unknown): boolean {
    let validate = this.validators.get(schema);
    if (!validate) {
      validate = this.ajv.compile(this.inline(schema));
      this.validators.set(schema, validate);
    }
    return validate(value);
  }

  /** A copy of the schema whose local $refs name the spec added to Ajv. */
  private inline(schema: JsonSchema): object {
    return JSON.parse(JSON.stringify(schema).replace(/"\$ref":"#\//g, '"$ref":"spec#/')) as object;
  }

  /** The JSON types the schema allows. */
  types(schema: JsonSchema): string[] {
    const resolved = this.resolve(schema);
    if (resolved.type !== undefined) {
      return Array.isArray(resolved.type) ? resolved.type : [resolved.type];
    }
    if (resolved.const !== undefined) return [jsonType(resolved.const)];
    if (resolved.enum) return [...new Set(resolved.enum.map(jsonType))];
    if (resolved.properties) return ['object'];
    throw new Error(`fuzz: no type in ${JSON.stringify(schema)}`);
  }

  /** Values valid against `schema`, each checked with Ajv (a generator bug fails loudly). */
  valid(schema: JsonSchema, channel: Channel, hints?: Hints, pointer = ''): fc.Arbitrary<unknown> {
    const resolved = this.resolve(schema);
    // Leaves are checked; an object may hold a hint's placeholder, so the whole request is
    // checked once its real values are in (by the test).
    const composite = this.types(resolved).some((type) => type === 'object' || type === 'array');
    const derived = this.derive(resolved, channel, hints, pointer).map((value) => {
      if (!composite && !this.isValid(resolved, value)) {
        throw new Error(
          `fuzz: generated ${JSON.stringify(value).slice(0, 300)} at "${pointer}", which ${JSON.stringify(resolved)} refuses`,
        );
      }
      return value;
    });
    const hinted = hints?.(pointer);
    return hinted
      ? fc.oneof({ arbitrary: derived, weight: 1 }, { arbitrary: hinted, weight: 2 })
      : derived;
  }

  private derive(
    schema: JsonSchema,
    channel: Channel,
    hints: Hints | undefined,
    pointer: string,
  ): fc.Arbitrary<unknown> {
    if (schema.const !== undefined) return fc.constant(schema.const);
    if (schema.enum) return fc.constantFrom(...schema.enum);
    const types = this.types(schema);
    if (types.length > 1) {
      return fc.oneof(
        ...types.map((type) => this.derive({ ...schema, type }, channel, hints, pointer)),
      );
    }
    switch (types[0]) {
      case 'null':
        return fc.constant(null);
      case 'boolean':
        return fc.boolean();
      case 'integer':
        return fc.integer({
          min: Math.max(schema.minimum ?? INT32.min, INT32.min),
          max: Math.min(schema.maximum ?? INT32.max, INT32.max),
        });
      case 'string':
        return this.string(schema, channel);
      case 'array': {
        const items = this.valid(schema.items ?? {}, channel, hints, `${pointer}/0`);
        const lengths = {
          minLength: schema.minItems ?? 0,
          maxLength: Math.min(schema.maxItems ?? 5, 5),
        };
        return schema.uniqueItems
          ? fc.uniqueArray(items, { ...lengths, selector: (item) => JSON.stringify(item) })
          : fc.array(items, lengths);
      }
      case 'object':
        return this.object(schema, channel, hints, pointer);
      default:
        throw new Error(`fuzz: type ${types[0]} is not supported`);
    }
  }

  private object(
    schema: JsonSchema,
    channel: Channel,
    hints: Hints | undefined,
    pointer: string,
  ): fc.Arbitrary<unknown> {
    const properties = schema.properties ?? {};
    if (schema.additionalProperties !== false) {
      throw new Error(`fuzz: an open object at "${pointer}" is not supported`);
    }
    const model = Object.fromEntries(
      Object.entries(properties).map(([name, property]) => [
        name,
        this.valid(property, channel, hints, `${pointer}/${escapePointer(name)}`),
      ]),
    );
    const record = fc.record(model, { requiredKeys: schema.required ?? [] });
    const min = schema.minProperties ?? 0;
    return min > 0 ? record.filter((value) => Object.keys(value).length >= min) : record;
  }

  private string(schema: JsonSchema, channel: Channel): fc.Arbitrary<string> {
    const minLength = schema.minLength ?? 0;
    const maxLength = schema.maxLength ?? 1000;
    const lengthOk = (text: string) => {
      const length = [...text].length;
      return length >= minLength && length <= maxLength;
    };
    if (schema.format !== undefined) {
      return formatted(schema.format).filter(
        (text) => lengthOk(text) && this.isValid(schema, text),
      );
    }
    if (schema.pattern !== undefined) {
      const charClass = /^\^\[([^\]]+)\]\+\$$/.exec(schema.pattern);
      if (charClass) {
        // One character class repeated: strings of its characters, of any allowed length.
        const unit = fc.stringMatching(new RegExp(`^[${charClass[1]}]$`));
        return lengths(unit, Math.max(minLength, 1), maxLength);
      }
      return fc.stringMatching(new RegExp(schema.pattern)).filter((text) => lengthOk(text));
    }
    const text = lengths(textUnit(channel), minLength, maxLength);
    // JSON text may hold U+0000, which the server refuses (PostgreSQL cannot store it):
    // now and then one character becomes a NUL, to check that refusal is the only one.
    if (channel !== 'json' && channel !== 'query') return text;
    return fc.oneof(
      { arbitrary: text, weight: 30 },
      {
        arbitrary: fc
          .tuple(lengths(textUnit(channel), Math.max(minLength, 1), maxLength), fc.nat())
          .map(([value, at]) => {
            const chars = [...value];
            chars[at % chars.length] = '\u0000';
            return chars.join('');
          }),
        weight: 1,
      },
    );
  }
}

/** Strings of `unit`, mostly short, sometimes exactly the shortest or the longest allowed. */
function lengths(unit: fc.Arbitrary<string>, minLength: number, maxLength: number) {
  return fc.oneof(
    { arbitrary: fc.string({ unit, minLength, maxLength }), weight: 8 },
    { arbitrary: fc.string({ unit, minLength, maxLength: minLength }), weight: 1 },
    { arbitrary: fc.string({ unit, minLength: maxLength, maxLength }), weight: 1 },
  );
}

/**
 * One character of free text. Headers carry visible ASCII (what HTTP allows without
 * trimming or refusing); the query, the path and JSON take any code point (fast-check's
 * `binary` never yields a lone surrogate), ASCII most of the time.
 */
function textUnit(channel: Channel): fc.Arbitrary<string> {
  const visibleAscii = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
  if (channel === 'header') return visibleAscii;
  return fc.oneof(
    { arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }), weight: 6 },
    { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), weight: 3 },
    {
      arbitrary: fc.constantFrom(
        'é',
        'ç',
        'ã',
        '😀',
        '\u200F',
        'ß',
        ' ',
        '"',
        '\\',
        '%',
        '&',
        '+',
        '#',
        '?',
        '/',
      ),
      weight: 1,
    },
  );
}

const pad = (value: number, width = 2) => String(value).padStart(width, '0');

/**
 * RFC 3339 date-times in every spelling JSON Schema's `date-time` takes: `T`/`t`/space,
 * `Z`/`z` or an offset (±hh:mm, ±hhmm), fractions of 0 to 9 digits, years 0000 to 9999,
 * and leap seconds. Those the format refuses anyway (31 April) are filtered by the caller.
 */
function dateTime(): fc.Arbitrary<string> {
  return fc
    .record({
      year: fc.oneof(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 1970, max: 2100 })),
      month: fc.integer({ min: 1, max: 12 }),
      day: fc.integer({ min: 1, max: 31 }),
      hour: fc.integer({ min: 0, max: 23 }),
      minute: fc.integer({ min: 0, max: 59 }),
      second: fc.oneof(
        { arbitrary: fc.integer({ min: 0, max: 59 }), weight: 20 },
        { arbitrary: fc.constant(60), weight: 1 },
      ),
      fraction: fc.option(fc.stringMatching(/^[0-9]{1,9}$/), { nil: '' }),
      separator: fc.constantFrom('T', 't', ' '),
      zone: fc.oneof(
        fc.constantFrom('Z', 'z'),
        fc
          .record({
            sign: fc.constantFrom('+', '-'),
            hours: fc.integer({ min: 0, max: 23 }),
            minutes: fc.integer({ min: 0, max: 59 }),
            colon: fc.constantFrom(':', ''),
          })
          .map(({ sign, hours, minutes, colon }) => `${sign}${pad(hours)}${colon}${pad(minutes)}`),
      ),
    })
    .map(
      (d) =>
        `${pad(d.year, 4)}-${pad(d.month)}-${pad(d.day)}${d.separator}` +
        `${pad(d.hour)}:${pad(d.minute)}:${pad(d.second)}${d.fraction ? `.${d.fraction}` : ''}${d.zone}`,
    );
}

function formatted(format: string): fc.Arbitrary<string> {
  switch (format) {
    case 'uuid':
      return fc.oneof(
        { arbitrary: fc.uuid(), weight: 4 },
        { arbitrary: fc.uuid().map((id) => id.toUpperCase()), weight: 1 },
      );
    case 'email':
      return fc.emailAddress();
    case 'date-time':
      return dateTime();
    case 'uri':
      // Mostly web URLs; now and then a scheme or user info that a rule may refuse.
      return fc.oneof(
        { arbitrary: fc.webUrl({ withQueryParameters: true, withFragments: true }), weight: 8 },
        { arbitrary: fc.webUrl({ authoritySettings: { withUserInfo: true } }), weight: 1 },
        {
          arbitrary: fc.constantFrom('ftp://files.example.com/in', 'urn:isbn:0451450523'),
          weight: 1,
        },
      );
    default:
      throw new Error(`fuzz: format ${format} is not supported`);
  }
}

/** A value left out: the property is deleted, or the input not sent. */
export const ABSENT: unique symbol = Symbol('absent');

/** One broken input: the value at `pointer` (within its part of the request) replaced. */
export interface Mutation {
  pointer: string;
  value: unknown;
}

/** One constraint of an input, and mutations that break it. */
export interface Break {
  /** The constraint, e.g. `/title maxLength 200`. */
  name: string;
  mutation: fc.Arbitrary<Mutation>;
}

/** Text values that are not integers, as the query takes them (Ajv does not coerce them). */
const NOT_INTEGER_TEXT = ['abc', '1.5', '', 'Infinity', '-Infinity', '1e400', 'NaN', 'true'];

/** Near misses of each format, besides random text. */
const FORMAT_MISSES: Record<string, string[]> = {
  uuid: [
    '0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d1',
    '0b5c1f7e7f3c4a8e9f572f8f1b1f5d10',
    '0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d1g',
    'urn:uuid:0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10',
  ],
  uri: ['hooks.example.com/in', '/relative/path', 'not a url', 'https://exa mple.com/'],
  email: ['no-at-sign.example.com', 'ada lovelace@example.com', '@example.com', 'ada@'],
  'date-time': [
    '2026-02-30T00:00:00Z',
    '2026-01-01',
    '2026-01-01T24:00:00Z',
    '2026-01-01T00:00:00',
    '2026-13-01T00:00:00Z',
    'yesterday',
  ],
};

export interface BreakOptions {
  /**
   * The longest text the channel carries as such (a path segment longer than the router's
   * limit is answered 414 before any validation): longer values are not generated.
   */
  maxText?: number;
}

/**
 * Every constraint of `schema` (and of its properties, in turn), each with mutations that
 * break it and it alone where the others allow: a wrong type, a bad format or pattern, a
 * length or a value out of bounds, a value outside the enum, a required property left out,
 * an unknown one added, too few properties. Each value is checked invalid with Ajv.
 */
export function breaksOf(
  kit: SchemaKit,
  schema: JsonSchema,
  channel: Channel,
  pointer = '',
  options: BreakOptions = {},
): Break[] {
  const resolved = kit.resolve(schema);
  const types = kit.types(resolved);
  const invalid = (value: unknown) => !kit.isValid(resolved, value);
  const at = (value: fc.Arbitrary<unknown>): fc.Arbitrary<Mutation> =>
    value.filter(invalid).map((v) => ({ pointer, value: v }));
  const found: Break[] = [];
  const add = (name: string, value: fc.Arbitrary<unknown>) =>
    found.push({ name: `${pointer || '(the whole input)'} ${name}`, mutation: at(value) });
  const text = (minLength: number, maxLength: number) =>
    fc.string({ unit: textUnit(channel), minLength, maxLength });

  if (channel === 'json') {
    const others = [12345, 1.5, true, null, 'text', [], ['a'], {}, { a: 1 }].filter(
      (value) =>
        !types.includes(jsonType(value)) &&
        !(jsonType(value) === 'integer' && types.includes('number')),
    );
    if (others.length > 0) add(`type ${types.join('|')}`, fc.constantFrom(...others));
  } else if (types.includes('integer')) {
    add('type integer', fc.constantFrom(...NOT_INTEGER_TEXT));
  }

  if (resolved.enum) {
    add('enum', channel === 'json' ? fc.string({ maxLength: 20 }) : text(1, 20));
  }
  if (resolved.const !== undefined) add('const', fc.string({ maxLength: 20 }));

  if (types.includes('integer')) {
    if (resolved.minimum !== undefined) {
      const min = resolved.minimum;
      add('minimum', fc.integer({ min: min - 1000, max: min - 1 }).map(textIf(channel)));
    }
    if (resolved.maximum !== undefined) {
      const max = resolved.maximum;
      add('maximum', fc.integer({ min: max + 1, max: max + 1000 }).map(textIf(channel)));
    }
  }

  if (types.includes('string')) {
    const minLength = resolved.minLength ?? 0;
    const maxLength = resolved.maxLength ?? 1000;
    // An empty path segment is another URL (or none), and an empty header field is taken
    // as no field: neither is a value of the parameter.
    if (minLength > 0 && !((channel === 'path' || channel === 'header') && minLength === 1)) {
      add(`minLength ${minLength}`, text(channel === 'path' ? 1 : 0, minLength - 1));
    }
    if (maxLength + 1 <= (options.maxText ?? Infinity)) {
      add(`maxLength ${maxLength}`, text(maxLength + 1, maxLength + 8));
    }
    const inBounds = text(Math.max(minLength, channel === 'path' ? 1 : 0), Math.min(maxLength, 60));
    if (resolved.pattern !== undefined) add(`pattern ${resolved.pattern}`, inBounds);
    if (resolved.format !== undefined) {
      add(
        `format ${resolved.format}`,
        fc.oneof(inBounds, fc.constantFrom(...(FORMAT_MISSES[resolved.format] ?? ['x']))),
      );
    }
  }

  if (types.includes('object')) {
    const properties = resolved.properties ?? {};
    for (const name of resolved.required ?? []) {
      const where = `${pointer}/${escapePointer(name)}`;
      found.push({
        name: `${where} required`,
        mutation: fc.constant({ pointer: where, value: ABSENT }),
      });
    }
    if (resolved.additionalProperties === false) {
      found.push({
        name: `${pointer || '(the body)'} additionalProperties false`,
        mutation: fc
          .tuple(
            fc.oneof(
              fc.string({ minLength: 1, maxLength: 20 }),
              fc.constantFrom('id', 'passwordHash', 'emailVerified', 'isActive', 'role', 'a/b~c'),
            ),
            fc.jsonValue({ maxDepth: 1 }),
          )
          // Fastify's JSON parser refuses these keys outright, as malformed (bad-input.test.ts).
          .filter(
            ([name]) => !(name in properties) && name !== '__proto__' && name !== 'constructor',
          )
          .map(([name, value]) => ({ pointer: `${pointer}/${escapePointer(name)}`, value })),
      });
    }
    if (resolved.minProperties !== undefined && resolved.minProperties > 0) {
      found.push({
        name: `${pointer || '(the body)'} minProperties ${resolved.minProperties}`,
        mutation: fc.constant({ pointer, value: {} }),
      });
    }
    for (const [name, property] of Object.entries(properties)) {
      found.push(...breaksOf(kit, property, channel, `${pointer}/${escapePointer(name)}`, options));
    }
  }
  return found;
}

const textIf = (channel: Channel) => (value: number) =>
  channel === 'json' ? value : String(value);

export function escapePointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}
