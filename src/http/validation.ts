import { Ajv2020, type Options } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

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
  return ajv;
}

export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const bodyAjv = createAjv({ coerceTypes: false });
  const textAjv = createAjv({ coerceTypes: 'array' });
  return ({ schema, httpPart }) =>
    (httpPart === 'body' ? bodyAjv : textAjv).compile(schema as object) as ReturnType<
      FastifySchemaCompiler<unknown>
    >;
}
