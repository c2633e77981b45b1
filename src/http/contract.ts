import responseValidation from '@fastify/response-validation';
import type {
  FastifyContextConfig,
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  RouteOptions,
} from 'fastify';
import openapiGlue from 'fastify-openapi-glue';
import type { Config } from '../config/index.js';
import type { AnyDomainError } from '../errors.js';
import { sendProblem } from './error-handler.js';
import type {
  Handler,
  HandlerInput,
  HandlerResult,
  Handlers,
  OperationId,
} from './handler-types.js';
import { appErrorOf, statusOfDomainError } from './problems.js';
import type { SecurityHandlers } from './security.js';
import { createContractValidation } from './validation.js';

/**
 * Registers every operation of the spec through fastify-openapi-glue, wired to its typed
 * handler. Glue on its own starts with a missing handler (and answers 500 at request time)
 * and only logs a missing security handler: here both stop the start-up with a message
 * naming what is missing, and so do handlers and security handlers the spec does not know.
 */

type SecurityRequirement = Record<string, string[]>;

export interface OpenApiDocument {
  openapi: string;
  info: Record<string, unknown>;
  servers?: { url: string; description?: string }[];
  paths: Record<string, Record<string, unknown>>;
  components?: { securitySchemes?: Record<string, unknown> };
  security?: SecurityRequirement[];
  /** Routes the server has that are not operations (the docs); `/*` covers what is below. */
  'x-excluded-routes'?: string[];
}

export class ContractError extends Error {
  override name = 'ContractError';
}

const methods = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

export interface SpecOperation {
  operationId: string;
  method: string;
  path: string;
}

export function operationsOf(spec: OpenApiDocument): SpecOperation[] {
  const found: SpecOperation[] = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (!methods.has(method)) continue;
      const { operationId } = operation as { operationId?: unknown };
      if (typeof operationId !== 'string') {
        throw new ContractError(`${method.toUpperCase()} ${path} has no operationId.`);
      }
      found.push({ operationId, method: method.toUpperCase(), path });
    }
  }
  return found;
}

/** Whether the spec excludes this Fastify route from its operations (x-excluded-routes). */
export function isExcludedRoute(spec: OpenApiDocument, url: string): boolean {
  return (spec['x-excluded-routes'] ?? []).some((entry) =>
    entry.endsWith('/*') ? url.startsWith(entry.slice(0, -1)) : url === entry,
  );
}

/**
 * Watches every route registered from now on: each must be an operation of the spec or a
 * route the spec excludes (x-excluded-routes), so the spec is the whole surface of the
 * server, the pages for people aside. The returned check throws a ContractError naming
 * any other (a throw in the onRoute hook itself would stall the plugin that added it);
 * the app runs it once more when it is ready, for routes added later.
 */
export function restrictRoutesToSpec(app: FastifyInstance, spec: OpenApiDocument): () => void {
  const operations = new Set(
    operationsOf(spec).flatMap((op) => {
      const url = op.path.replace(/\{(\w+)\}/g, ':$1');
      // Every GET answers HEAD too (Fastify's twin of the route; see "HEAD" in the spec).
      return op.method === 'GET' ? [`GET ${url}`, `HEAD ${url}`] : [`${op.method} ${url}`];
    }),
  );
  const strays: string[] = [];
  app.addHook('onRoute', (route) => {
    if (isExcludedRoute(spec, route.url)) return;
    for (const method of [route.method].flat()) {
      const name = `${method.toUpperCase()} ${route.url}`;
      if (!operations.has(name)) strays.push(name);
    }
  });
  const check = () => {
    if (strays.length > 0) {
      throw new ContractError(
        strays
          .map(
            (name) =>
              `the route ${name} is neither an operation of the spec nor in its x-excluded-routes`,
          )
          .join('\n'),
      );
    }
  };
  app.addHook('onReady', async () => check());
  return check;
}

/** Throws a ContractError listing every mismatch between the spec and the code. */
export function assertCoverage(
  spec: OpenApiDocument,
  handlers: Record<string, unknown>,
  securityHandlers: Record<string, unknown>,
): void {
  const operations = operationsOf(spec);
  const ids = new Set(operations.map((op) => op.operationId));
  const problems = [
    ...operations
      .filter((op) => typeof handlers[op.operationId] !== 'function')
      .map((op) => `operation ${op.operationId} (${op.method} ${op.path}) has no handler`),
    ...Object.keys(handlers)
      .filter((id) => !ids.has(id))
      .map((id) => `handler ${id} matches no operation in the spec`),
  ];
  const schemes = Object.keys(spec.components?.securitySchemes ?? {});
  problems.push(
    ...schemes
      .filter((name) => typeof securityHandlers[name] !== 'function')
      .map((name) => `security scheme ${name} has no security handler`),
    ...Object.keys(securityHandlers)
      .filter((name) => !schemes.includes(name))
      .map((name) => `security handler ${name} matches no security scheme in the spec`),
  );
  if (problems.length > 0) {
    throw new ContractError(`The spec and the handlers disagree:\n- ${problems.join('\n- ')}`);
  }
}

/**
 * The preHandler of an operation whose security makes credentials optional (`- {}` beside
 * `- bearerAuth: []`). Glue tries the requirements in order and `{}` always passes, so it
 * would never read a token at all, and with `{}` last it would quietly treat a bad token as
 * no token. Here: no Authorization header, an anonymous caller (principal null); one sent
 * must pass its scheme's handler, or the request is refused like a secured one (401).
 */
function optionalSecurity(
  spec: OpenApiDocument,
  operationId: string,
  securityHandlers: SecurityHandlers,
): ((request: FastifyRequest) => Promise<void>) | undefined {
  const operation = operationsOf(spec).find((op) => op.operationId === operationId);
  if (!operation) return undefined;
  const item = spec.paths[operation.path]?.[operation.method.toLowerCase()] as
    { security?: SecurityRequirement[] } | undefined;
  const security = item?.security ?? spec.security ?? [];
  if (!security.some((requirement) => Object.keys(requirement).length === 0)) return undefined;
  const schemes = security.flatMap((requirement) => Object.keys(requirement));
  if (schemes.length === 0) return undefined;
  // Every scheme of this API (bearerAuth) reads the Authorization header.
  return async (request) => {
    if (request.headers.authorization === undefined) return;
    for (const scheme of schemes) await securityHandlers[scheme]!(request);
  };
}

type Parameter = { name?: string; in?: string; $ref?: string };

/**
 * The names of the header parameters of an operation (its own and its path's), as the
 * spec spells them. Handlers read them by those names (`headers['If-Match']`).
 */
function headerParametersOf(spec: OpenApiDocument, operationId: string): string[] {
  const operation = operationsOf(spec).find((op) => op.operationId === operationId);
  if (!operation) return [];
  const item = spec.paths[operation.path] as Record<string, { parameters?: Parameter[] }> & {
    parameters?: Parameter[];
  };
  const parameters = [
    ...(item.parameters ?? []),
    ...(item[operation.method.toLowerCase()]?.parameters ?? []),
  ];
  const components = (spec.components as { parameters?: Record<string, Parameter> } | undefined)
    ?.parameters;
  return parameters
    .map((parameter) =>
      parameter.$ref?.startsWith('#/components/parameters/')
        ? components?.[parameter.$ref.slice('#/components/parameters/'.length)]
        : parameter,
    )
    .filter((parameter) => parameter?.in === 'header' && typeof parameter.name === 'string')
    .map((parameter) => parameter!.name!);
}

type Response = { $ref?: string; content?: Record<string, unknown> };

const isJson = (mediaType: string) => /^application\/([\w.-]+\+)?json$/.test(mediaType);

/**
 * The statuses of an operation whose response is not JSON (the spec as YAML), each with
 * its media type, which the handler's reply is sent as; JSON bodies get Fastify's own.
 */
function textMediaTypesOf(spec: OpenApiDocument, operationId: string): Record<string, string> {
  const operation = operationsOf(spec).find((op) => op.operationId === operationId);
  if (!operation) return {};
  const item = spec.paths[operation.path]?.[operation.method.toLowerCase()] as
    { responses?: Record<string, Response> } | undefined;
  const components = (spec.components as { responses?: Record<string, Response> } | undefined)
    ?.responses;
  const found: Record<string, string> = {};
  for (const [status, declared] of Object.entries(item?.responses ?? {})) {
    const response = declared.$ref?.startsWith('#/components/responses/')
      ? components?.[declared.$ref.slice('#/components/responses/'.length)]
      : declared;
    const [mediaType] = Object.keys(response?.content ?? {});
    if (mediaType !== undefined && !isJson(mediaType)) found[status] = mediaType;
  }
  return found;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: AnyDomainError };
type AnyResult =
  | { status: number; body: unknown; headers?: Record<string, string> }
  | { status: number; error: AnyDomainError };

// The builders only shape data; the types of ResultBuilders (what handlers see of them)
// are what check it.
type AnyBuilders = {
  reply: (status: number, body: unknown, headers?: Record<string, string>) => AnyResult;
  respond: (status: number, outcome: Outcome, headers?: Record<string, string>) => AnyResult;
  refuse: (error: AnyDomainError) => AnyResult;
};
const refuse = (error: AnyDomainError): AnyResult => ({
  status: statusOfDomainError(error),
  error,
});
const anyBuilders: AnyBuilders = {
  reply: (status, body, headers) => ({
    status,
    body,
    ...(headers ? { headers } : {}),
  }),
  respond: (status, outcome, headers) =>
    outcome.ok
      ? { status, body: outcome.value, ...(headers ? { headers } : {}) }
      : refuse(outcome.error),
  refuse,
};

function toRouteHandler<K extends OperationId>(
  handler: Handler<K>,
  headerNames: string[],
  textMediaTypes: Record<string, string>,
) {
  const lowerCaseNames = headerNames.map((name) => [name, name.toLowerCase()] as const);
  const { reply: replyWith, respond, refuse: refuseWith } = anyBuilders;
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const headers: Record<string, string> = {};
    for (const [name, lowerCase] of lowerCaseNames) {
      const value = request.headers[lowerCase];
      if (typeof value === 'string') headers[name] = value;
    }
    // Every property written out (not spread from `builders`): one object shape, built on
    // every request.
    const input = {
      params: request.params,
      query: request.query,
      headers,
      body: request.body,
      principal: request.principal,
      request,
      reply: replyWith,
      respond,
      refuse: refuseWith,
    } as unknown as HandlerInput<K>;
    const result = (await handler(input)) as HandlerResult<K> & AnyResult;
    if ('error' in result) return sendProblem(appErrorOf(result.error, request), request, reply);
    if (result.headers) reply.headers(result.headers);
    reply.code(result.status);
    if (result.status >= 400) reply.type('application/problem+json');
    const mediaType = textMediaTypes[String(result.status)];
    if (mediaType !== undefined) reply.type(mediaType);
    return reply.send(result.body);
  };
}

export interface ContractOptions {
  spec: OpenApiDocument;
  handlers: Handlers;
  securityHandlers: SecurityHandlers;
  /** Fastify route `config` by operationId (rate limits, for instance). */
  routeConfig?: Partial<Record<OperationId, FastifyContextConfig>>;
}

export async function registerContract(
  app: FastifyInstance,
  options: ContractOptions,
): Promise<void> {
  const { spec, handlers, securityHandlers, routeConfig = {} } = options;
  assertCoverage(spec, handlers, securityHandlers);
  const byId = handlers as unknown as Record<string, Handler<OperationId>>;
  await app.register(openapiGlue, {
    // Glue resolves $refs in place; keep the served document untouched.
    specification: structuredClone(spec),
    operationResolver: (operationId: string) => {
      const handler = byId[operationId];
      if (!handler) throw new ContractError(`operation ${operationId} has no handler`);
      const config = routeConfig[operationId as OperationId];
      // Replaces glue's own preHandler for the operation, which would let every request by.
      const preHandler = optionalSecurity(spec, operationId, securityHandlers);
      // Glue's types say the handler returns void; Fastify awaits async handlers all the same.
      const route = {
        handler: toRouteHandler(
          handler,
          headerParametersOf(spec, operationId),
          textMediaTypesOf(spec, operationId),
        ),
        ...(config ? { config } : {}),
        ...(preHandler ? { preHandler } : {}),
      };
      return route as unknown as RouteOptions;
    },
    securityHandlers,
  });
}

/**
 * The spec's operations as routes, each validated by the spec's schemas on the way in and,
 * with RESPONSE_VALIDATION (development and tests), on the way out. Encapsulated: its
 * validators are for its routes.
 */
export const contract: FastifyPluginAsync<
  ContractOptions & { responseValidation: Config['responseValidation'] }
> = async (app, options) => {
  const validation = createContractValidation();
  app.setValidatorCompiler(validation.validatorCompiler);
  if (options.responseValidation) {
    // Registered before the routes, or it does not see them. A handler that answers
    // outside the contract (a body that does not match, or a status the operation does
    // not declare) fails loudly (500) instead of being quietly trimmed. The Ajv instance is
    // the one that validates request bodies: the same formats, nothing coerced or removed.
    await app.register(responseValidation, {
      ajv: validation.exactAjv,
      responseStatusCodeValidation: true,
    });
  }
  await registerContract(app, options);
};
