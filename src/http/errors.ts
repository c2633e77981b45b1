import type { ProblemCode, ProblemItem } from '../api-types.js';

/**
 * Errors of the HTTP layer itself: a request the transport or the contract refuses (bad
 * JSON, an invalid field, a missing token, too many requests) or a server that cannot
 * answer. Each carries its status, the spec's stable `code` and a message for the client;
 * the error handler turns it into a problem. Domain errors (src/errors.ts) are mapped to
 * these by src/http/problems.ts.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: ProblemCode,
    readonly title: string,
    detail: string,
    readonly errors?: ProblemItem[],
    /** Headers the problem comes with (`Retry-After`), all declared by the spec. */
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(detail);
    this.name = new.target.name;
  }
}

export class ValidationError extends AppError {
  constructor(detail: string, errors: ProblemItem[]) {
    super(400, 'VALIDATION_ERROR', 'Validation failed', detail, errors);
  }
}

export class MalformedRequestError extends AppError {
  constructor(detail: string) {
    super(400, 'MALFORMED_REQUEST', 'Malformed request', detail);
  }
}

export class UnauthorizedError extends AppError {
  constructor(detail = 'A valid access token is required.') {
    super(401, 'UNAUTHORIZED', 'Unauthorized', detail);
  }
}

export class ServiceUnavailableError extends AppError {
  constructor(detail = 'The service is temporarily unavailable. Try again later.') {
    super(503, 'SERVICE_UNAVAILABLE', 'Service unavailable', detail);
  }
}

/** One property name as a JSON pointer (RFC 6901) token. */
export function escapePointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}
