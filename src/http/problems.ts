import type { FastifyRequest } from 'fastify';
import type { ProblemCode, ProblemItem } from '../api-types.js';
import type { AnyDomainError, DomainErrorCode } from '../errors.js';
import { AppError, escapePointer } from './errors.js';
import { problemTypeOf, type StatusOfProblem } from './problem-types.js';

/**
 * The problem each domain error is told to a client as. Its status (and title) is that
 * problem's, in problem-types.ts: the statuses the compiler checks against each
 * operation's declared responses (see `respond` and `refuse` in handler-types.ts).
 */
export const domainProblems = {
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  CHANGED_MEANWHILE: 'PRECONDITION_FAILED',
  FORBIDDEN: 'FORBIDDEN',
  INVALID_INPUT: 'VALIDATION_ERROR',
  INVALID_CREDENTIALS: 'INVALID_CREDENTIALS',
  ACCOUNT_DISABLED: 'ACCOUNT_DISABLED',
  UNAUTHENTICATED: 'UNAUTHORIZED',
  UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  TOO_MANY_ATTEMPTS: 'RATE_LIMITED',
  LIMIT_REACHED: 'RATE_LIMITED',
} as const satisfies Record<DomainErrorCode, ProblemCode>;

export type StatusOfDomainError<E extends AnyDomainError> = StatusOfProblem<
  (typeof domainProblems)[E['code']]
>;

export function statusOfDomainError(error: AnyDomainError): number {
  return problemTypeOf(domainProblems[error.code]).status;
}

type SchemaWithProperties = { properties?: Record<string, unknown> } | undefined;

/**
 * Which part of the request an input named by a domain error came from: a path or query
 * parameter of the route when it has one by that name, else the body.
 */
function locationOf(request: FastifyRequest, field: string): ProblemItem['location'] {
  const schema = request.routeOptions.schema as
    { params?: SchemaWithProperties; querystring?: SchemaWithProperties } | undefined;
  if (schema?.params?.properties?.[field] !== undefined) return 'path';
  if (schema?.querystring?.properties?.[field] !== undefined) return 'query';
  return 'body';
}

function itemsOf(error: AnyDomainError, request: FastifyRequest): ProblemItem[] | undefined {
  const item = (field: string, message: string): ProblemItem[] => [
    { location: locationOf(request, field), pointer: `/${escapePointer(field)}`, message },
  ];
  switch (error.code) {
    case 'CONFLICT':
      return error.field === null ? undefined : item(error.field, error.reason);
    case 'INVALID_INPUT':
      return item(error.field, error.reason);
    default:
      return undefined;
  }
}

/** The response headers a domain error's facts become (all of them declared by the spec). */
function headersOf(error: AnyDomainError): Record<string, string> | undefined {
  switch (error.code) {
    case 'TOO_MANY_ATTEMPTS':
      return { 'retry-after': String(error.retryAfterSeconds) };
    default:
      return undefined;
  }
}

/** The AppError (status, problem code, title, items) that tells a client about `error`. */
export function appErrorOf(error: AnyDomainError, request: FastifyRequest): AppError {
  const { status, code, title } = problemTypeOf(domainProblems[error.code]);
  return new AppError(
    status,
    code,
    title,
    error.message,
    itemsOf(error, request),
    headersOf(error),
  );
}
