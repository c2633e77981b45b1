/**
 * Domain errors: what went wrong, in the domain's words, with a literal `code` and the
 * facts a client needs (which field conflicts, which input is wrong). They know nothing of
 * HTTP: src/http/problems.ts maps each code to a status and a problem, and the compiler
 * checks that every error an operation's handler can meet maps to a status the spec
 * declares for that operation.
 *
 * Services do not throw them: they return them in an `Outcome`, so that the errors a
 * service function can produce are part of its type.
 */
export abstract class DomainError extends Error {
  abstract readonly code: string;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The resource does not exist, or the caller may not know that it does. */
export class NotFoundError extends DomainError {
  readonly code = 'NOT_FOUND';
  constructor(readonly resource: string) {
    super(`${resource} not found.`);
  }
}

/**
 * The request clashes with the state of other resources: a value that must be unique is
 * taken already, the resource is already in the state asked for, or the change would leave
 * no active admin.
 */
export class ConflictError extends DomainError {
  readonly code = 'CONFLICT';
  /**
   * `field`: the input field at fault, when one can be named; `reason`: what is wrong with
   * its value, in a few words.
   */
  constructor(
    message: string,
    readonly field: string | null = null,
    readonly reason = 'is already taken',
  ) {
    super(message);
  }
}

/**
 * The resource changed since the version the caller based its change on (an edit by
 * somebody else, a publication): nothing was changed. Read it again and retry.
 */
export class ChangedMeanwhileError extends DomainError {
  readonly code = 'CHANGED_MEANWHILE';
  constructor(resource: string) {
    super(
      `The ${resource.toLowerCase()} changed since the version in If-Match. Read it again and retry.`,
    );
  }
}

/** The caller is known but may not do this. */
export class ForbiddenError extends DomainError {
  readonly code = 'FORBIDDEN';
  constructor(message = 'You are not allowed to do this.') {
    super(message);
  }
}

/**
 * An input passed the contract's schema but breaks a rule the schema cannot express (a
 * password over 72 bytes, a cursor this server never gave out). `field` names the input.
 */
export class InvalidInputError extends DomainError {
  readonly code = 'INVALID_INPUT';
  constructor(
    readonly field: string,
    readonly reason: string,
    message = 'The request does not match the API contract.',
  ) {
    super(message);
  }
}

export class InvalidCredentialsError extends DomainError {
  readonly code = 'INVALID_CREDENTIALS';
  constructor() {
    super('The email address or the password is wrong.');
  }
}

export class AccountDisabledError extends DomainError {
  readonly code = 'ACCOUNT_DISABLED';
  constructor() {
    super('This account is disabled.');
  }
}

/** The caller's credentials no longer stand for anybody (a token of a deleted account). */
export class UnauthenticatedError extends DomainError {
  readonly code = 'UNAUTHENTICATED';
  constructor(message = 'A valid access token is required.') {
    super(message);
  }
}

/** Something the service depends on (the database) does not answer. */
export class UnavailableError extends DomainError {
  readonly code = 'UNAVAILABLE';
  constructor(message = 'The service is temporarily unavailable. Try again later.') {
    super(message);
  }
}

/**
 * Too many failed logins for one email address in the current window: its logins are
 * refused, right password or not, for `retryAfterSeconds` more.
 */
export class TooManyAttemptsError extends DomainError {
  readonly code = 'TOO_MANY_ATTEMPTS';
  constructor(readonly retryAfterSeconds: number) {
    super('Too many failed logins for this email address. Try again later (see Retry-After).');
  }
}

/** A limit on what one client may hold at once (a socket's subscriptions) is reached. */
export class LimitReachedError extends DomainError {
  readonly code = 'LIMIT_REACHED';
}

/** Every domain error; the HTTP layer's mapping must cover each `code`. */
export type AnyDomainError =
  | LimitReachedError
  | NotFoundError
  | ConflictError
  | ChangedMeanwhileError
  | ForbiddenError
  | InvalidInputError
  | InvalidCredentialsError
  | AccountDisabledError
  | UnauthenticatedError
  | UnavailableError
  | TooManyAttemptsError;

export type DomainErrorCode = AnyDomainError['code'];

/**
 * What a service function answers: a value, or one of the domain errors its type names.
 * `Outcome<User, NotFoundError | ForbiddenError>` says all a caller has to handle.
 */
export type Outcome<T, E extends AnyDomainError = never> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export function ok<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value };
}

export function fail<E extends AnyDomainError>(
  error: E,
): { readonly ok: false; readonly error: E } {
  return { ok: false, error };
}
