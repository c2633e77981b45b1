import type { FastifyRequest } from 'fastify';
import type { components, operations } from '../../generated/api.js';

/**
 * The compile-time side of the contract. Every type here is computed from
 * generated/api.d.ts, so a change to openapi/openapi.yaml (once regenerated) changes what
 * the compiler accepts from a handler: a missing or extra handler, a wrong request field,
 * an undeclared status or a body that does not match its status are type errors.
 */

export type OperationId = keyof operations;
type Operation<K extends OperationId> = operations[K];

export type Schemas = components['schemas'];
export type Problem = Schemas['Problem'];
export type ProblemCode = Problem['code'];
export type ProblemItem = Schemas['ProblemItem'];

/** The authenticated caller, set by the bearerAuth security handler. */
export interface Principal {
  readonly userId: string;
}

type Responses<K extends OperationId> = Operation<K>['responses'];

/** Every status code the spec declares for operation K. */
export type StatusOf<K extends OperationId> = keyof Responses<K> & number;

type BodyOfResponse<R> = R extends { content: infer C }
  ? C extends { 'application/json': infer B }
    ? B
    : C extends { 'application/problem+json': infer P }
      ? P
      : never
  : undefined;

/** The body the spec declares for status S of operation K. */
export type ResponseBody<K extends OperationId, S extends StatusOf<K>> = BodyOfResponse<
  Responses<K>[S]
>;

declare const replied: unique symbol;

/**
 * What a handler returns: one declared status with its own body type. Only `reply` makes
 * one, because its parameters are where TypeScript checks an object literal for fields
 * the schema does not declare (a returned literal escapes that check in async functions).
 */
export type HandlerResult<K extends OperationId> = {
  [S in StatusOf<K>]: {
    status: S;
    body: ResponseBody<K, S>;
    headers?: Record<string, string>;
  };
}[StatusOf<K>] & { readonly [replied]: K };

export type Reply<K extends OperationId> = <S extends StatusOf<K>>(
  status: S,
  body: ResponseBody<K, S>,
  headers?: Record<string, string>,
) => HandlerResult<K>;

type Parameters_<K extends OperationId> = Operation<K>['parameters'];
type RequestBody<K extends OperationId> =
  Operation<K> extends { requestBody: { content: { 'application/json': infer B } } }
    ? B
    : Operation<K> extends { requestBody?: { content: { 'application/json': infer B } } }
      ? B | undefined
      : undefined;

/** The validated request, typed from the spec (Ajv has already checked it at run time). */
export interface HandlerInput<K extends OperationId> {
  params: NonNullable<Parameters_<K>['path']>;
  query: NonNullable<Parameters_<K>['query']>;
  body: RequestBody<K>;
  /** Set on operations secured by bearerAuth; null on public ones. */
  principal: Principal | null;
  /** For logging (`request.log`) and the request id; not for reading input. */
  request: FastifyRequest;
  /** Builds the result: `return reply(200, body)`. */
  reply: Reply<K>;
}

export type Handler<K extends OperationId> = (input: HandlerInput<K>) => Promise<HandlerResult<K>>;

/** One handler per operationId in the spec, and nothing else. */
export type Handlers = { [K in OperationId]: Handler<K> };

/** A part of the handler map, for one module (users, auth, …). */
export type HandlerGroup<K extends OperationId> = { [P in K]: Handler<P> };
