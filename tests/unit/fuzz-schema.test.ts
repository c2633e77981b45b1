import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withMutation } from '../helpers/fuzz/requests.js';
import { breaksOf, SchemaKit, type Channel, type JsonSchema } from '../helpers/fuzz/schema.js';

const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

/**
 * The fuzz test's schema deriver (tests/helpers/fuzz/schema.ts), checked against an Ajv of
 * its own: what it generates as valid is valid, and every break it offers is refused.
 */

const root = {
  components: {
    schemas: {
      Name: { type: 'string', minLength: 1, maxLength: 5 },
    },
  },
};

const ajv = new Ajv2020({ strict: false, allowUnionTypes: true });
addFormats(ajv);
// As the server (src/http/validation.ts): the bare RFC 4122 form only, no `urn:uuid:`.
ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
ajv.addSchema(root, 'root');

const validate = (schema: JsonSchema) =>
  ajv.compile(JSON.parse(JSON.stringify(schema).replace(/"\$ref":"#\//g, '"$ref":"root#/')));

const kit = new SchemaKit(root);

interface Example {
  name: string;
  schema: JsonSchema;
  channel?: Channel;
  /** A valid value the breaks are applied to. */
  base: unknown;
  /** Constraints breaksOf must name (a part of each name). */
  constraints: string[];
}

const examples: Example[] = [
  {
    name: 'a type array with null',
    schema: { type: ['string', 'null'], maxLength: 10 },
    base: null,
    constraints: ['type string|null', 'maxLength 10'],
  },
  {
    name: 'a pattern',
    schema: { type: 'string', pattern: '^[a-z0-9]+(-[a-z0-9]+)*$', minLength: 1, maxLength: 20 },
    base: 'a-slug',
    constraints: ['type string', 'minLength 1', 'maxLength 20', 'pattern'],
  },
  {
    name: 'format uuid',
    schema: { type: 'string', format: 'uuid' },
    base: '0b5c1f7e-7f3c-4a8e-9f57-2f8f1b1f5d10',
    constraints: ['type string', 'format uuid'],
  },
  {
    name: 'format date-time',
    schema: { type: 'string', format: 'date-time', maxLength: 40 },
    base: '2026-05-15T10:00:00Z',
    constraints: ['type string', 'format date-time', 'maxLength 40'],
  },
  {
    name: 'an enum',
    schema: { type: 'string', enum: ['draft', 'published'] },
    base: 'draft',
    constraints: ['type string', 'enum'],
  },
  {
    name: 'an integer in the query, with bounds',
    schema: { type: 'integer', minimum: 1, maximum: 100 },
    channel: 'query',
    base: '20',
    constraints: ['type integer', 'minimum', 'maximum'],
  },
  {
    name: 'an object: additionalProperties false, required, a $ref',
    schema: {
      type: 'object',
      additionalProperties: false,
      required: ['name'],
      properties: {
        name: { $ref: '#/components/schemas/Name' },
        status: { enum: ['draft', 'published'] },
        count: { type: 'integer', minimum: 0, maximum: 10 },
        tags: { type: 'array', items: { type: 'string', maxLength: 3 }, maxItems: 2 },
      },
    },
    base: { name: 'ada', status: 'draft', count: 3, tags: ['a'] },
    constraints: [
      '(the whole input) type object',
      '/name required',
      '(the body) additionalProperties false',
      '/name minLength 1',
      '/name maxLength 5',
      '/status enum',
      '/count minimum',
      '/count maximum',
    ],
  },
];

/**
 * The query carries text, which Ajv (without coercion, as the fuzzer checks) takes as a
 * string: integers are checked as the server checks them, once coerced.
 */
const coerced = (value: unknown, channel: Channel) =>
  channel === 'query' && typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;

describe.each(examples)('the fuzz schema deriver: $name', (example) => {
  const channel = example.channel ?? 'json';
  const check = validate(example.schema);

  it('generates only values the schema takes', () => {
    expect(check(coerced(example.base, channel)), 'the base').toBe(true);
    for (const value of fc.sample(kit.valid(example.schema, channel), { numRuns: 200, seed: 1 })) {
      expect(check(coerced(value, channel)), JSON.stringify(value)).toBe(true);
    }
  });

  it('breaks each constraint with values the schema refuses', () => {
    const breaks = breaksOf(kit, example.schema, channel);
    const names = breaks.map((b) => b.name);
    for (const constraint of example.constraints) {
      expect(
        names.some((name) => name.includes(constraint)),
        `${constraint} in ${names.join(', ')}`,
      ).toBe(true);
    }
    for (const { name, mutation } of breaks) {
      for (const m of fc.sample(mutation, { numRuns: 30, seed: 2 })) {
        const broken = withMutation(example.base, m);
        expect(check(coerced(broken, channel)), `${name}: ${JSON.stringify(broken)}`).toBe(false);
      }
    }
  });
});
