import type { FastifyRequest } from 'fastify';
import type { ProblemCode, ProblemItem } from '../api-types.js';
import type { AnyDomainError, DomainErrorCode } from '../errors.js';
import { AppError, escapePointer } from './errors.js';

/**
 * How each domain error is told to a client: its status, the spec's problem `code` and
 * title. The statuses are what the compiler checks against each operation's declared
 * responses (see `respond` and `refuse` in handler-types.ts).
 */
export const domainProblems = {
  NOT_FOUND: { status: 404, code: 'NOT_FOUND', title: 'Not found' },
  CONFLICT: { status: 409, code: 'CONFLICT', title: 'Conflict' },
  FORBIDDEN: { status: 403, code: 'FORBIDDEN', title: 'Forbidden' },
  INVALID_INPUT: { status: 400, code: 'VALIDATION_ERROR', title: 'Validation failed' },
  INVALID_CREDENTIALS: { status: 401, code: 'INVALID_CREDENTIALS', title: 'Invalid credentials' },
  ACCOUNT_DISABLED: { status: 403, code: 'ACCOUNT_DISABLED', title: 'Account disabled' },
  UNAUTHENTICATED: { status: 401, code: 'UNAUTHORIZED', title: 'Unauthorized' },
  UNAVAILABLE: { status: 503, code: 'SERVICE_UNAVAILABLE', title: 'Service unavailable' },
} as const satisfies Record<DomainErrorCode, { status: number; code: ProblemCode; title: string }>;

export type StatusOfDomainError<E extends AnyDomainError> =
  (typeof domainProblems)[E['code']]['status'];

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
      return error.field === null ? undefined : item(error.field, 'is already taken');
    case 'INVALID_INPUT':
      return item(error.field, error.reason);
    default:
      return undefined;
  }
}

/** The AppError (status, problem code, title, items) that tells a client about `error`. */
export function appErrorOf(error: AnyDomainError, request: FastifyRequest): AppError {
  const { status, code, title } = domainProblems[error.code];
  return new AppError(status, code, title, error.message, itemsOf(error, request));
}
