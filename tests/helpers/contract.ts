import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { ValidateFunction } from 'ajv';
import { loadSpec } from '../../src/spec.js';

const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

/**
 * An independent check of responses against generated/openapi.json, used by every
 * integration test: the status must be declared for the operation, the content type
 * declared for that status, and the body valid against its schema. It shares nothing with
 * the server's own validation, so a server that validated wrongly would still be caught.
 */
const spec = loadSpec() as unknown as Record<string, unknown> & {
  paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
};

// The spec as a whole is not a JSON Schema (it has `openapi`, `paths`, …), so it is added
// without meta-schema validation; only the schema objects it points at are compiled.
const ajv = new Ajv2020({
  strict: false,
  validateSchema: false,
  allErrors: true,
  allowUnionTypes: true,
});
addFormats(ajv);
ajv.addSchema(spec, 'spec');

function resolve(value: unknown): Record<string, unknown> {
  let current = value as Record<string, unknown>;
  while (typeof current.$ref === 'string') {
    const pointer = current.$ref.replace(/^#\//, '').split('/');
    current = pointer.reduce<unknown>(
      (node, token) =>
        (node as Record<string, unknown>)[token.replace(/~1/g, '/').replace(/~0/g, '~')],
      spec,
    ) as Record<string, unknown>;
  }
  return current;
}

const escape = (token: string) => token.replace(/~/g, '~0').replace(/\//g, '~1');
const validators = new Map<string, ValidateFunction>();

function validatorFor(pointer: string): ValidateFunction {
  let validate = validators.get(pointer);
  if (!validate) {
    validate = ajv.compile({ $ref: `spec#${pointer}` });
    validators.set(pointer, validate);
  }
  return validate;
}

export interface ObservedResponse {
  method: string;
  /** The Fastify route (`/api/users/:id`), or undefined when no route matched. */
  route: string | undefined;
  statusCode: number;
  contentType: string | undefined;
  payload: string;
}

/** Problems with a response, as sentences; empty when it matches the contract. */
export function contractViolations(response: ObservedResponse): string[] {
  const where = `${response.method} ${response.route ?? '(no route)'} → ${response.statusCode}`;
  const mediaType = response.contentType?.split(';', 1)[0]?.trim();

  if (response.route === undefined) {
    // Unmatched URLs (404), bad URL encoding (400) and over-long path parameters (414)
    // are answered before any operation is chosen: they must still be problems.
    if (![400, 404, 414].includes(response.statusCode)) return [`${where}: unexpected status`];
    return checkBody(
      where,
      '/components/schemas/Problem',
      mediaType,
      'application/problem+json',
      response.payload,
    );
  }

  const path = response.route.replace(/:(\w+)/g, '{$1}');
  const operation = spec.paths[path]?.[response.method.toLowerCase()];
  if (!operation) return [`${where}: no such operation in the spec`];
  const declared = operation.responses[String(response.statusCode)];
  if (!declared) return [`${where}: status not declared in the spec`];
  const content = resolve(declared).content as Record<string, unknown> | undefined;
  if (!content)
    return response.payload === '' ? [] : [`${where}: body sent where none is declared`];
  if (!mediaType || !(mediaType in content)) {
    return [
      `${where}: content type ${mediaType} not declared (${Object.keys(content).join(', ')})`,
    ];
  }
  const responsePointer = resolvedPointer(
    `/paths/${escape(path)}/${response.method.toLowerCase()}/responses/${response.statusCode}`,
  );
  return checkBody(
    where,
    `${responsePointer}/content/${escape(mediaType)}/schema`,
    mediaType,
    mediaType,
    response.payload,
  );
}

/** Follows response-level $refs so the schema pointer names where the schema really is. */
function resolvedPointer(pointer: string): string {
  const node = pointer
    .slice(1)
    .split('/')
    .reduce<unknown>(
      (n, t) => (n as Record<string, unknown>)[t.replace(/~1/g, '/').replace(/~0/g, '~')],
      spec,
    ) as Record<string, unknown>;
  return typeof node.$ref === 'string' ? resolvedPointer(node.$ref.slice(1)) : pointer;
}

function checkBody(
  where: string,
  schemaPointer: string,
  actual: string | undefined,
  expected: string,
  payload: string,
): string[] {
  if (actual !== expected) return [`${where}: content type ${actual}, expected ${expected}`];
  let body: unknown;
  try {
    body = JSON.parse(payload);
  } catch {
    return [`${where}: body is not JSON: ${payload.slice(0, 200)}`];
  }
  const validate = validatorFor(schemaPointer);
  if (validate(body)) return [];
  return [`${where}: ${ajv.errorsText(validate.errors)} in ${payload.slice(0, 300)}`];
}
