import fc from 'fast-check';
import type { InjectOptions } from 'fastify';
import { ABSENT, type JsonSchema, type Mutation } from './schema.js';

/** An input of an operation, as the spec declares it ($refs followed). */
export interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  schema: JsonSchema;
}

export interface Operation {
  operationId: string;
  method: string;
  /** The spec's path template, `/api/users/{id}`. */
  path: string;
  parameters: Parameter[];
  body: { required: boolean; mediaTypes: string[]; schema: JsonSchema } | undefined;
  /** Whether a bearer token may be sent, and whether one must be. */
  bearer: 'required' | 'optional' | 'none';
  statuses: string[];
}

interface SpecParameter extends Partial<Parameter> {
  $ref?: string;
}

interface SpecOperation {
  operationId: string;
  parameters?: SpecParameter[];
  security?: Array<Record<string, string[]>>;
  requestBody?: { required?: boolean; content: Record<string, { schema: JsonSchema }> };
  responses: Record<string, unknown>;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

/** Every operation of the bundled spec, with its parameters (path-level ones included). */
export function operationsOf(spec: {
  paths: Record<string, Record<string, unknown>>;
  components: { parameters?: Record<string, Parameter> };
}): Operation[] {
  const parameterOf = (p: SpecParameter): Parameter => {
    if (p.$ref === undefined) return p as Parameter;
    const name = p.$ref.replace('#/components/parameters/', '');
    const target = spec.components.parameters?.[name];
    if (!target) throw new Error(`fuzz: unknown parameter ${p.$ref}`);
    return target;
  };
  const operations: Operation[] = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    const shared = ((item.parameters as SpecParameter[] | undefined) ?? []).map(parameterOf);
    for (const method of METHODS) {
      const operation = item[method] as SpecOperation | undefined;
      if (!operation) continue;
      const own = (operation.parameters ?? []).map(parameterOf);
      const parameters = [
        ...shared.filter((p) => !own.some((o) => o.name === p.name && o.in === p.in)),
        ...own,
      ];
      const security = operation.security ?? [];
      const bearer = !security.some((s) => 'bearerAuth' in s)
        ? 'none'
        : security.some((s) => Object.keys(s).length === 0)
          ? 'optional'
          : 'required';
      const content = operation.requestBody?.content;
      const mediaTypes = Object.keys(content ?? {});
      const schemas = Object.values(content ?? {}).map((media) => JSON.stringify(media.schema));
      if (new Set(schemas).size > 1) {
        throw new Error(`fuzz: ${operation.operationId} has one schema per media type`);
      }
      operations.push({
        operationId: operation.operationId,
        method: method.toUpperCase(),
        path,
        parameters,
        body: content
          ? {
              required: operation.requestBody?.required === true,
              mediaTypes,
              schema: Object.values(content)[0]!.schema,
            }
          : undefined,
        bearer,
        statuses: Object.keys(operation.responses),
      });
    }
  }
  return operations;
}

/**
 * A real value known only when a case runs (a resource made for it, a live token): the
 * arbitraries hold its name, and each case puts in the value.
 */
export class Ref {
  constructor(readonly name: string) {}
  [fc.toStringMethod](): string {
    return `ref(${this.name})`;
  }
}

export const refs = (...names: string[]) => fc.constantFrom(...names.map((name) => new Ref(name)));

/** What a case sends, before its refs get their values. */
export interface Inputs {
  path: Record<string, unknown>;
  query: Record<string, unknown>;
  headers: Record<string, unknown>;
  mediaType: string | undefined;
  body: unknown;
}

/** The inputs with every Ref replaced by its value in `values`. */
export function materialize<T>(value: T, values: Record<string, unknown>): T {
  if (value instanceof Ref) {
    if (!(value.name in values)) throw new Error(`fuzz: no value for ref(${value.name})`);
    return values[value.name] as T;
  }
  if (Array.isArray(value)) {
    return (value as unknown[]).map((item): unknown => materialize(item, values)) as T;
  }
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, materialize(item, values)]),
    ) as T;
  }
  return value;
}

/** Sets (or, with ABSENT, deletes) the value at a JSON pointer, in a copy. */
export function withMutation(target: unknown, { pointer, value }: Mutation): unknown {
  if (pointer === '') return value;
  const tokens = pointer
    .slice(1)
    .split('/')
    .map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'));
  const copy = structuredClone(target ?? {}) as Record<string, unknown>;
  let node = copy;
  for (const token of tokens.slice(0, -1)) {
    node[token] ??= {};
    node = node[token] as Record<string, unknown>;
  }
  const last = tokens.at(-1)!;
  if (value === ABSENT) delete node[last];
  else node[last] = value;
  return copy;
}

const text = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value));

/** The request for `inputs` (refs materialized), with `headers` added. */
export function requestOf(
  operation: Operation,
  inputs: Inputs,
  headers: Record<string, string>,
): InjectOptions & { url: string; headers: Record<string, string>; payload?: string } {
  const path = operation.path.replace(/\{(\w+)\}/g, (_match, name: string) =>
    encodeURIComponent(text(inputs.path[name])),
  );
  const query = Object.entries(inputs.query)
    .filter(([, value]) => value !== ABSENT && value !== undefined)
    .map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(text(value))}`)
    .join('&');
  const all: Record<string, string> = { ...headers };
  for (const [name, value] of Object.entries(inputs.headers)) {
    if (value !== ABSENT && value !== undefined) all[name.toLowerCase()] = text(value);
  }
  const request = {
    method: operation.method,
    url: query ? `${path}?${query}` : path,
    headers: all,
  };
  if (inputs.body === ABSENT || inputs.body === undefined) return request;
  all['content-type'] = inputs.mediaType ?? 'application/json';
  return { ...request, payload: JSON.stringify(inputs.body) };
}

const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

/** A request as text to replay it: method, URL, headers, body, and the `curl` command. */
export function replayable(request: ReturnType<typeof requestOf>): string {
  const headerLines = Object.entries(request.headers).map(([name, value]) => `${name}: ${value}`);
  const curl = [
    `curl -i -X ${request.method}`,
    shellQuote(`http://localhost:3000${request.url}`),
    ...Object.entries(request.headers).map(
      ([name, value]) => `-H ${shellQuote(`${name}: ${value}`)}`,
    ),
    ...(request.payload === undefined ? [] : [`--data-raw ${shellQuote(request.payload)}`]),
  ].join(' ');
  return [
    `${request.method} ${request.url}`,
    ...headerLines,
    '',
    request.payload ?? '(no body)',
    '',
    curl,
  ].join('\n');
}
