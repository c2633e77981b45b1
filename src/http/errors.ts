import type { ProblemCode, ProblemItem } from './handler-types.js';

/**
 * Domain errors. Services and repositories throw these; only the error handler turns them
 * into responses (application/problem+json). Each carries the status, the stable `code`
 * of the spec's Problem schema and a message meant for the client.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: ProblemCode,
    readonly title: string,
    detail: string,
    readonly errors?: ProblemItem[],
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

export class InvalidCredentialsError extends AppError {
  constructor() {
    super(
      401,
      'INVALID_CREDENTIALS',
      'Invalid credentials',
      'The email address or the password is wrong.',
    );
  }
}

export class AccountDisabledError extends AppError {
  constructor() {
    super(403, 'ACCOUNT_DISABLED', 'Account disabled', 'This account is disabled.');
  }
}

export class ForbiddenError extends AppError {
  constructor(detail = 'You are not allowed to do this.') {
    super(403, 'FORBIDDEN', 'Forbidden', detail);
  }
}

export class NotFoundError extends AppError {
  constructor(resource: string) {
    super(404, 'NOT_FOUND', 'Not found', `${resource} not found.`);
  }
}

export class ConflictError extends AppError {
  constructor(detail: string, errors?: ProblemItem[]) {
    super(409, 'CONFLICT', 'Conflict', detail, errors);
  }
}

export class ServiceUnavailableError extends AppError {
  constructor(detail = 'The service is temporarily unavailable. Try again later.') {
    super(503, 'SERVICE_UNAVAILABLE', 'Service unavailable', detail);
  }
}

/** The PostgreSQL error behind a Drizzle error (Drizzle wraps driver errors in `cause`). */
export function databaseErrorOf(
  error: unknown,
): { code?: string; constraint?: string; message: string } | null {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth += 1) {
    const candidate = current as Error & { code?: unknown; constraint?: unknown };
    if (typeof candidate.code === 'string' && /^[0-9A-Z]{5}$/.test(candidate.code)) {
      return {
        code: candidate.code,
        ...(typeof candidate.constraint === 'string' ? { constraint: candidate.constraint } : {}),
        message: candidate.message,
      };
    }
    current = candidate.cause;
  }
  return null;
}

export const UNIQUE_VIOLATION = '23505';

/** One property name as a JSON pointer (RFC 6901) token. */
export function escapePointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}
