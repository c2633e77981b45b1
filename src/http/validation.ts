import { Ajv2020, type ErrorObject, type Options } from 'ajv/dist/2020.js';
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
};

export function createAjv(options: Options): Ajv2020 {
  const ajv = new Ajv2020({ ...shared, ...options });
  addFormats(ajv);
  // ajv-formats' uuid also takes "urn:uuid:…"; JSON Schema's uuid (RFC 4122) is the bare form.
  ajv.addFormat('uuid', uuidPattern);
  compileOncePerSchema(ajv);
  return ajv;
}

/**
 * Glue hands every route its own dereferenced copy of the shared schemas (the Problem of
 * each error status, of each operation), and Ajv caches by object, not by content: 78
 * compilations of 16 distinct schemas took 0.31 s of every start. Equal schemas share one
 * validator instead (Ajv's own cache does the same for one object).
 */
function compileOncePerSchema(ajv: Ajv2020): void {
  const compile = ajv.compile.bind(ajv);
  const compiled = new Map<string, ReturnType<typeof compile>>();
  ajv.compile = ((schema: object, meta?: boolean) => {
    let key: string;
    try {
      key = JSON.stringify(schema);
    } catch {
      return compile(schema, meta); // a recursive schema has no text form
    }
    let validate = compiled.get(key);
    if (!validate) {
      validate = compile(schema, meta);
      compiled.set(key, validate);
    }
    return validate;
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
  // Compiled at the first request that needs it, not at start-up: a server with dozens of
  // operations answers sooner, and an operation never called costs nothing.
  const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
    let compiled: Check | undefined;
    const validate = (data: unknown): boolean => {
      compiled ??= compileFor(
        httpPart === 'headers' ? lowerCaseHeaderNames(schema as HeadersSchema) : (schema as object),
        httpPart,
      );
      const valid = compiled(data);
      validate.errors = compiled.errors;
      return valid;
    };
    validate.errors = null as Check['errors'];
    return validate as ReturnType<FastifySchemaCompiler<unknown>>;
  };
  return { validatorCompiler, exactAjv };
}
