import type { FastifyRequest } from 'fastify';
import type { operations, webhooks } from '../../generated/api.js';
import type { AnyDomainError, Outcome } from '../errors.js';
import type { Principal } from '../lib/principal.js';
import type { StatusOfDomainError } from './problems.js';

/**
 * The compile-time side of the contract. Every type here is computed from
 * generated/api.d.ts, so a change to the spec under openapi/ (once regenerated) changes what
 * the compiler accepts from a handler: a missing or extra handler, a wrong request field,
 * an undeclared status (a domain error included), a body that does not match its status,
 * or a header the response does not declare are type errors.
 */

/** The operations of the spec's `webhooks:`: messages this server sends, not routes. */
type WebhookOperation = webhooks[keyof webhooks]['post'];

/**
 * The operations this server routes: openapi-typescript puts the webhooks' among
 * `operations` too. They are told apart by type, not by name (an admin operation may well
 * be called `createWebhook`).
 */
export type OperationId = {
  [K in keyof operations]: operations[K] extends WebhookOperation ? never : K;
}[keyof operations];
type Operation<K extends OperationId> = operations[K];

type Responses<K extends OperationId> = Operation<K>['responses'];

/** Every status code the spec declares for operation K. */
export type StatusOf<K extends OperationId> = keyof Responses<K> & number;

type BodyOfResponse<R> = R extends { content: infer C }
  ? C extends { 'application/json': infer B }
    ? B
    : C extends { 'application/problem+json': infer P }
      ? P
      : C extends { 'application/yaml': infer Y }
        ? Y
        : C extends { 'text/plain; version=0.0.4; charset=utf-8': infer T }
          ? T
          : never
  : undefined;

/** The body the spec declares for status S of operation K. */
export type ResponseBody<K extends OperationId, S extends StatusOf<K>> = BodyOfResponse<
  Responses<K>[S]
>;

/** Headers the server itself sets on every response that declares them (app.ts, rate limits). */
type ServerSetHeader =
  | 'X-Request-Id'
  | 'X-RateLimit-Limit'
  | 'X-RateLimit-Remaining'
  | 'X-RateLimit-Reset'
  | 'Retry-After';

// openapi-typescript adds `[name: string]: unknown` to every headers object; without it,
// a header the spec does not name is an excess property the compiler refuses. What the
// server sets is not the handler's to send.
type NamedHeaders<H> = {
  [P in keyof H as string extends P ? never : P extends ServerSetHeader ? never : P]: H[P];
};

/** The headers the spec declares for status S of operation K (never, when it names none). */
export type ResponseHeaders<
  K extends OperationId,
  S extends StatusOf<K>,
> = Responses<K>[S] extends {
  headers: infer H;
}
  ? keyof NamedHeaders<H> extends never
    ? never
    : NamedHeaders<H>
  : never;

/**
 * The trailing headers argument of reply/respond: required when the spec requires a header
 * the handler must set (a Location, a Cache-Control), optional when it only names some,
 * absent when it names none.
 */
export type HeadersArgument<K extends OperationId, S extends StatusOf<K>> = [
  ResponseHeaders<K, S>,
] extends [never]
  ? [headers?: never]
  : Record<never, never> extends ResponseHeaders<K, S>
    ? [headers?: ResponseHeaders<K, S>]
    : [headers: ResponseHeaders<K, S>];

/** The statuses of the domain errors in E that operation K does not declare. */
export type UndeclaredErrorStatus<K extends OperationId, E extends AnyDomainError> = Exclude<
  StatusOfDomainError<E>,
  StatusOf<K>
>;

/**
 * `unknown` when every error in E maps to a status K declares; otherwise a property the
 * argument lacks, whose name and type tell which statuses are missing from the spec.
 */
type DeclaresErrorsOf<K extends OperationId, E extends AnyDomainError> = [
  UndeclaredErrorStatus<K, E>,
] extends [never]
  ? unknown
  : { readonly 'status not declared for this operation': UndeclaredErrorStatus<K, E> };

declare const replied: unique symbol;

/**
 * What a handler returns: one declared status with its own body type, or a domain error
 * whose status the operation declares. Only the builders of HandlerInput make one,
 * because their parameters are where TypeScript checks an object literal for fields the
 * schema does not declare (a returned literal escapes that check in async functions).
 */
export type HandlerResult<K extends OperationId> = (
  | {
      [S in StatusOf<K>]: {
        status: S;
        body: ResponseBody<K, S>;
        headers?: ResponseHeaders<K, S>;
      };
    }[StatusOf<K>]
  | { status: StatusOf<K>; error: AnyDomainError }
) & { readonly [replied]: K };

export interface ResultBuilders<K extends OperationId> {
  /** A declared status with its body: `return reply(200, user)`. */
  reply: <S extends StatusOf<K>>(
    status: S,
    body: ResponseBody<K, S>,
    ...headers: HeadersArgument<K, S>
  ) => HandlerResult<K>;
  /**
   * A service's outcome: its value with `status`, or its error as the problem of that
   * error's status, which the operation must declare.
   */
  respond: <S extends StatusOf<K>, E extends AnyDomainError = never>(
    status: S,
    outcome: Outcome<ResponseBody<K, S>, E> & DeclaresErrorsOf<K, E>,
    ...headers: HeadersArgument<K, S>
  ) => HandlerResult<K>;
  /** A domain error, as the problem of its status, which the operation must declare. */
  refuse: <E extends AnyDomainError>(error: E & DeclaresErrorsOf<K, E>) => HandlerResult<K>;
}

type Parameters_<K extends OperationId> = Operation<K>['parameters'];
type RequestBody<K extends OperationId> =
  Operation<K> extends { requestBody: { content: { 'application/json': infer B } } }
    ? B
    : Operation<K> extends { requestBody?: { content: { 'application/json': infer B } } }
      ? B | undefined
      : undefined;

/** The validated request, typed from the spec (Ajv has already checked it at run time). */
export interface HandlerInput<K extends OperationId> extends ResultBuilders<K> {
  params: NonNullable<Parameters_<K>['path']>;
  query: NonNullable<Parameters_<K>['query']>;
  /** The header parameters the spec declares for K, by their names in the spec. */
  headers: NonNullable<Parameters_<K>['header']>;
  body: RequestBody<K>;
  /** Set on operations secured by bearerAuth; null on public ones. */
  principal: Principal | null;
  /** For logging (`request.log`) and the request id; not for reading input. */
  request: FastifyRequest;
}

export type Handler<K extends OperationId> = (input: HandlerInput<K>) => Promise<HandlerResult<K>>;

/** One handler per operationId in the spec, and nothing else. */
export type Handlers = { [K in OperationId]: Handler<K> };

/** A part of the handler map, for one module (users, auth, …). */
export type HandlerGroup<K extends OperationId> = { [P in K]: Handler<P> };
