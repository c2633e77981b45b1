import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { ValidateFunction } from 'ajv';
import { loadSpec } from '../../src/spec.js';

const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

/**
 * An independent check of responses against generated/openapi.json, used by every
 * integration test: the status must be declared for the operation, the content type
 * declared for that status, the body valid against its schema (a problem's `type` the
 * URL of its code), and every header sent declared (and every required one sent, with a
 * valid value). It shares nothing with the
 * server's own validation, so a server that validated wrongly would still be caught.
 */
const spec = loadSpec() as unknown as Record<string, unknown> & {
  paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
  'x-unrouted-responses'?: Record<string, unknown>;
  'x-excluded-routes'?: string[];
};

// The spec as a whole is not a JSON Schema (it has `openapi`, `paths`, …), so it is added
// without meta-schema validation; only the schema objects it points at are compiled.
const ajvOptions = { strict: false, validateSchema: false, allErrors: true, allowUnionTypes: true };
const ajv = new Ajv2020(ajvOptions);
// Header values are text on the wire: `x-ratelimit-limit: 10` is the integer 10.
const headerAjv = new Ajv2020({ ...ajvOptions, coerceTypes: true });
for (const instance of [ajv, headerAjv]) {
  addFormats(instance);
  instance.addSchema(spec, 'spec');
}

/**
 * Headers that belong to the connection or the framing of the message, not to the API:
 * HTTP servers and proxies add them to every response, so the spec does not list them.
 * (`content-type` is checked on its own, against the declared media types.)
 */
const TRANSPORT_HEADERS = new Set([
  'content-type',
  'content-length',
  'date',
  'connection',
  'keep-alive',
]);

/**
 * Headers for browsers that every response may carry, whatever the operation: helmet's
 * security headers and the CORS headers of a request from an allowed origin. They say
 * nothing about the API's data, so the spec describes them once, in its description
 * ("Headers on every response", "Cross-origin requests"), instead of on each of its
 * responses; a response that declares one of them (the CORS preflight's) is still
 * checked against the declaration.
 */
const BROWSER_POLICY_HEADERS = new Set([
  'content-security-policy',
  'cross-origin-opener-policy',
  'cross-origin-resource-policy',
  'origin-agent-cluster',
  'referrer-policy',
  'strict-transport-security',
  'x-content-type-options',
  'x-dns-prefetch-control',
  'x-download-options',
  'x-frame-options',
  'x-permitted-cross-domain-policies',
  'x-xss-protection',
  'access-control-allow-origin',
  'access-control-expose-headers',
  'vary',
]);

const unescape = (token: string) => token.replace(/~1/g, '/').replace(/~0/g, '~');
const escape = (token: string) => token.replace(/~/g, '~0').replace(/\//g, '~1');

function at(pointer: string): Record<string, unknown> {
  return pointer
    .slice(1)
    .split('/')
    .reduce<unknown>(
      (node, token) => (node as Record<string, unknown>)[unescape(token)],
      spec,
    ) as Record<string, unknown>;
}

/** Follows $refs so the pointer names where the object really is. */
function resolvedPointer(pointer: string): string {
  const node = at(pointer);
  return typeof node.$ref === 'string' ? resolvedPointer(node.$ref.slice(1)) : pointer;
}

const validators = new Map<string, ValidateFunction>();

function validatorFor(pointer: string, instance = ajv): ValidateFunction {
  const key = `${instance === ajv ? 'body' : 'header'}${pointer}`;
  let validate = validators.get(key);
  if (!validate) {
    validate = instance.compile({ $ref: `spec#${pointer}` });
    validators.set(key, validate);
  }
  return validate;
}

export interface ObservedResponse {
  method: string;
  /** The Fastify route (`/api/users/:id`), or undefined when no route matched. */
  route: string | undefined;
  statusCode: number;
  contentType: string | undefined;
  /** Every header sent, by name in any case (`reply.getHeaders()` or an inject response's). */
  headers: Record<string, string | string[] | number | undefined>;
  payload: string;
}

/** Problems with a response, as sentences; empty when it matches the contract. */
export function contractViolations(response: ObservedResponse): string[] {
  const where = `${response.method} ${response.route ?? '(no route)'} → ${response.statusCode}`;
  const responsePointer = declaredResponse(response);
  if (responsePointer === null) return [];
  if (typeof responsePointer !== 'string') return [`${where}: ${responsePointer.violation}`];
  // A HEAD response seen on the wire has no body; seen in the server (onSend), it still
  // holds the GET's, which is checked as the GET's.
  const bodyless = response.method === 'HEAD' && response.payload === '';
  return [
    ...(bodyless ? [] : bodyViolations(where, responsePointer, response)),
    ...headerViolations(where, responsePointer, response.headers),
  ];
}

/**
 * The routes the spec says are not operations (the docs and their assets): an entry
 * names a route, or, ending in `/*`, every route below it.
 */
export function isExcludedRoute(route: string): boolean {
  return (spec['x-excluded-routes'] ?? []).some((entry) =>
    entry.endsWith('/*') ? route.startsWith(entry.slice(0, -1)) : route === entry,
  );
}

/** Where the spec declares this response, or why it does not. */
function declaredResponse(response: ObservedResponse): string | { violation: string } | null {
  const status = String(response.statusCode);
  // Pages for people: what they answer is theirs, but an error is a problem like any other.
  if (response.route !== undefined && isExcludedRoute(response.route)) {
    return response.statusCode >= 400 ? declaredResponse({ ...response, route: undefined }) : null;
  }
  if (response.route === undefined) {
    // Unmatched URLs (404), bad URL encoding (400) and over-long path parameters (414) are
    // answered before any operation is chosen; the spec lists them apart, outside `paths`.
    if (!spec['x-unrouted-responses']?.[status]) {
      return { violation: 'status not declared in x-unrouted-responses' };
    }
    return resolvedPointer(`/x-unrouted-responses/${status}`);
  }
  const path = response.route.replace(/:(\w+)/g, '{$1}');
  // HEAD is GET without the body (RFC 9110): the spec declares the GET alone ("HEAD").
  const method = response.method === 'HEAD' ? 'get' : response.method.toLowerCase();
  const operation = spec.paths[path]?.[method];
  if (!operation) return { violation: 'no such operation in the spec' };
  if (!operation.responses[status]) return { violation: 'status not declared in the spec' };
  return resolvedPointer(`/paths/${escape(path)}/${method}/responses/${status}`);
}

function bodyViolations(
  where: string,
  responsePointer: string,
  response: ObservedResponse,
): string[] {
  const mediaType = response.contentType?.split(';', 1)[0]?.trim();
  const content = at(responsePointer).content as Record<string, unknown> | undefined;
  if (!content)
    return response.payload === '' ? [] : [`${where}: body sent where none is declared`];
  // A declared media type may carry parameters (the metrics' `text/plain; version=0.0.4`):
  // it matches the response's when the parameters are the same too.
  const sent = response.contentType?.replace(/\s+/g, '').toLowerCase();
  const declared = Object.keys(content).find((key) =>
    key.includes(';') ? key.replace(/\s+/g, '').toLowerCase() === sent : key === mediaType,
  );
  if (!mediaType || declared === undefined) {
    return [
      `${where}: content type ${mediaType} not declared (${Object.keys(content).join(', ')})`,
    ];
  }
  // A JSON media type is parsed; any other (the spec as YAML) is validated as text.
  let body: unknown = response.payload;
  if (/^application\/([\w.-]+\+)?json$/.test(mediaType)) {
    try {
      body = JSON.parse(response.payload);
    } catch {
      return [`${where}: body is not JSON: ${response.payload.slice(0, 200)}`];
    }
  }
  const validate = validatorFor(`${responsePointer}/content/${escape(declared)}/schema`);
  if (!validate(body)) {
    return [`${where}: ${ajv.errorsText(validate.errors)} in ${response.payload.slice(0, 300)}`];
  }
  return mediaType === 'application/problem+json' ? problemTypeViolations(where, body) : [];
}

/**
 * The spec (ProblemCode) says a problem's `type` is `/problems/` and its code in
 * kebab-case, where getProblemType explains it: a problem pointing anywhere else would
 * name a URL that does not resolve.
 */
function problemTypeViolations(where: string, body: unknown): string[] {
  const { type, code } = body as { type: string; code: string };
  const expected = `/problems/${code.toLowerCase().replace(/_/g, '-')}`;
  return type === expected ? [] : [`${where}: problem type ${type}, expected ${expected}`];
}

/** Header names compare case-insensitively (RFC 9110), in the spec as on the wire. */
function headerViolations(
  where: string,
  responsePointer: string,
  headers: ObservedResponse['headers'],
): string[] {
  const declared = new Map(
    Object.keys((at(responsePointer).headers as Record<string, unknown> | undefined) ?? {}).map(
      (name) => [name.toLowerCase(), resolvedPointer(`${responsePointer}/headers/${escape(name)}`)],
    ),
  );
  const sent = new Map(
    Object.entries(headers)
      .filter(([, value]) => value !== undefined)
      .map(([name, value]) => [name.toLowerCase(), value]),
  );
  const violations: string[] = [];
  for (const [name, value] of sent) {
    if (TRANSPORT_HEADERS.has(name)) continue;
    const header = declared.get(name);
    if (header === undefined && BROWSER_POLICY_HEADERS.has(name)) continue;
    if (header === undefined) {
      violations.push(`${where}: header ${name} is not declared`);
      continue;
    }
    const validate = validatorFor(`${header}/schema`, headerAjv);
    for (const one of Array.isArray(value) ? value : [value]) {
      if (!validate(String(one))) {
        violations.push(
          `${where}: header ${name}: ${headerAjv.errorsText(validate.errors)} (${String(one)})`,
        );
      }
    }
  }
  for (const [name, header] of declared) {
    if (at(header).required === true && !sent.has(name)) {
      violations.push(`${where}: required header ${name} is missing`);
    }
  }
  return violations;
}
