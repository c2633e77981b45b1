import { Ajv2020, type ErrorObject, type Options, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';
import { uuidPattern } from '../lib/uuid.js';

// ajv-formats is CommonJS; its default export arrives wrapped under ESM interop.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

/**
 * Request validation from the spec. OpenAPI 3.1 schemas are JSON Schema 2020-12, hence
 * Ajv2020. Two instances, because the parts of a request differ:
 * - path, query and headers arrive as text, so their values are coerced to the declared
 *   types ("20" → 20);
 * - bodies are JSON and are taken as sent: no coercion ({"username": 12345} is a 400, not
 *   "12345") and no removal of unknown properties (additionalProperties: false is a 400).
 */
const shared: Options = {
  strict: true,
  // OpenAPI 3.1 nullable fields are written `type: [string, 'null']`.
  allowUnionTypes: true,
  allErrors: true,
  useDefaults: true,
  removeAdditional: false,
  // Each schema is not checked against JSON Schema's meta-schema again here: `npm run check`
  // lints the spec's schemas (Spectral), glue validates the spec at start, and Ajv still
  // refuses an unknown keyword (strict) or a keyword's value of the wrong type as it
  // compiles. The check compiled the 2020-12 meta-schema in each instance, 30-60 ms of
  // every start and of the first request with a query.
  validateSchema: false,
};

export function createAjv(options: Options): Ajv2020 {
  const ajv = new Ajv2020({ ...shared, ...options });
  addFormats(ajv);
  // ajv-formats' uuid also takes "urn:uuid:…"; JSON Schema's uuid (RFC 4122) is the bare form.
  ajv.addFormat('uuid', uuidPattern);
  compileWhenFirstUsed(ajv);
  return ajv;
}

/**
 * A schema is compiled when its validator is first called, and equal schemas share one
 * validator.
 * - When first used: Fastify's routes and @fastify/response-validation ask for every
 *   validator of every operation as the server starts; most are not needed for a while
 *   (or, in a test's server, ever). Compiling the response schemas took 90 ms of each start
 *   in development.
 * - Shared: glue hands every route its own dereferenced copy of the shared schemas (the
 *   Problem of each error status, of each operation), and Ajv caches by object, not by
 *   content: 78 compilations of 16 distinct schemas took 0.31 s. Ajv's own cache does the
 *   same for one object.
 * A schema that cannot compile fails its first request with a 500 (the spec is validated
 * and linted before that, in `npm run check` and at start).
 */
function compileWhenFirstUsed(ajv: Ajv2020): void {
  const compile = ajv.compile.bind(ajv);
  const compiled = new Map<string, ValidateFunction>();
  const compileShared = (schema: object): ValidateFunction => {
    let key: string;
    try {
      key = JSON.stringify(schema);
    } catch {
      return compile(schema); // a recursive schema has no text form
    }
    let validate = compiled.get(key);
    if (!validate) {
      validate = compile(schema);
      compiled.set(key, validate);
    }
    return validate;
  };
  ajv.compile = ((schema: object) => {
    let validate: ValidateFunction | undefined;
    const whenUsed = (data: unknown): boolean => {
      validate ??= compileShared(schema);
      const valid = validate(data);
      whenUsed.errors = validate.errors;
      return valid;
    };
    whenUsed.errors = null as ValidateFunction['errors'];
    return whenUsed;
  }) as typeof ajv.compile;
}

export interface ContractValidation {
  /** Fastify's validator compiler for requests (path, query, headers, body). */
  validatorCompiler: FastifySchemaCompiler<unknown>;
  /**
   * The instance that checks bodies as they are (no coercion, nothing removed): requests'
   * and, in development and tests, responses' (given to @fastify/response-validation), so
   * both directions agree on formats such as the strict uuid.
   */
  exactAjv: Ajv2020;
}

type Check = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

interface HeadersSchema {
  properties?: Record<string, unknown>;
  required?: string[];
}

/**
 * Node.js gives request headers lower-cased names, and the spec spells them as HTTP does
 * (`If-Match`). Fastify lower-cases the names in a headers schema only for its own
 * validator compiler, not for a custom one like this: without this, `If-Match` was never
 * found in the request, and its constraints (maxLength) never checked.
 */
function lowerCaseHeaderNames(schema: HeadersSchema): object {
  return {
    ...schema,
    ...(schema.properties && {
      properties: Object.fromEntries(
        Object.entries(schema.properties).map(([name, value]) => [name.toLowerCase(), value]),
      ),
    }),
    ...(schema.required && { required: schema.required.map((name) => name.toLowerCase()) }),
  };
}

export function createContractValidation(): ContractValidation {
  const exactAjv = createAjv({ coerceTypes: false });
  const textAjv = createAjv({ coerceTypes: 'array' });
  const compileFor = (schema: object, httpPart: string | undefined): Check => {
    if (httpPart === 'body') return exactAjv.compile(schema);
    // Ajv coerces "Infinity" and "1e400" to Infinity, which then passes `type: integer`
    // and skips minimum and maximum: the coerced values are checked again, as they are.
    const coerce = textAjv.compile(schema);
    const recheck = exactAjv.compile(schema);
    const validate = (data: unknown): boolean => {
      const valid = coerce(data) && recheck(data);
      validate.errors = coerce.errors ?? recheck.errors;
      return valid;
    };
    validate.errors = null as Check['errors'];
    return validate;
  };
  // Each validator is compiled at the first request that needs it (compileWhenFirstUsed).
  const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
    compileFor(
      httpPart === 'headers' ? lowerCaseHeaderNames(schema as HeadersSchema) : (schema as object),
      httpPart,
    ) as ReturnType<FastifySchemaCompiler<unknown>>;
  return { validatorCompiler, exactAjv };
}
