import { DrizzleQueryError } from 'drizzle-orm';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Problem, ProblemCode, ProblemItem } from '../api-types.js';
import { databaseErrorOf } from '../db/errors.js';
import { DomainError, type AnyDomainError } from '../errors.js';
import {
  AppError,
  MalformedRequestError,
  ServiceUnavailableError,
  UnauthorizedError,
  ValidationError,
  escapePointer,
} from './errors.js';
import type { AllowedMethods } from './allowed-methods.js';
import { HOSTLESS_PATH } from './client-errors.js';
import { requestMediaTypesOf } from './json-body.js';
import { problemTypeOf, problemTypeUri } from './problem-types.js';
import { appErrorOf } from './problems.js';

/**
 * The one place where errors become responses: every error, whatever threw it (Fastify,
 * Ajv, the security handler, a service, the database), leaves as an RFC 9457 problem
 * with a status the spec declares. A 500 says nothing about what went wrong inside.
 */

const internal = new AppError(
  500,
  'INTERNAL_ERROR',
  'Internal server error',
  'Something went wrong on our side. Try again later.',
);

type AjvError = {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
};

const locations: Record<string, ProblemItem['location']> = {
  body: 'body',
  querystring: 'query',
  params: 'path',
  headers: 'header',
};

/** Ajv's errors as a problem's `errors`, in the part of the request (`context`) they are about. */
export function validationItems(errors: AjvError[], context: string | undefined): ProblemItem[] {
  const location = locations[context ?? 'body'] ?? 'body';
  return errors.map((error) => {
    let pointer = error.instancePath;
    let message = error.message ?? 'is invalid';
    if (error.keyword === 'required') {
      pointer += `/${escapePointer(String(error.params.missingProperty))}`;
      message = 'is required';
    } else if (error.keyword === 'additionalProperties') {
      pointer += `/${escapePointer(String(error.params.additionalProperty))}`;
      message = 'is not a known property';
    }
    return { location, pointer, message };
  });
}

// Fastify's own client errors, by code; anything else with a 4xx status falls back on it.
const fastifyClientErrors: Record<string, (request?: FastifyRequest) => AppError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: () =>
    new AppError(413, 'PAYLOAD_TOO_LARGE', 'Payload too large', 'The request body is too large.'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: (request) =>
    new AppError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      'Unsupported media type',
      request
        ? `Send the body as ${requestMediaTypesOf(request).join(' or ')}.`
        : 'Send the body in a media type the operation accepts.',
    ),
  FST_ERR_CTP_EMPTY_JSON_BODY: () =>
    new MalformedRequestError('The body is empty but the content type says JSON.'),
  FST_ERR_CTP_INVALID_JSON_BODY: () => new MalformedRequestError('The body is not valid JSON.'),
  FST_ERR_MAX_PARAM_LENGTH: () =>
    new AppError(414, 'URI_TOO_LONG', 'URI too long', 'A path parameter is too long.'),
  FST_ERR_BAD_URL: () => new MalformedRequestError('The URL is not correctly encoded.'),
};

const unavailableCodes = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  '57014', // query_canceled: statement_timeout
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

// node-postgres' own timeouts and dropped connections carry no code, only these messages.
const unavailableMessages =
  /timeout exceeded when trying to connect|Connection terminated|Query read timeout|connection error|Client was closed|Cannot use a pool after calling end/i;

function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth += 1) {
    const { code } = current as { code?: unknown };
    if (typeof code === 'string' && (unavailableCodes.has(code) || code.startsWith('08'))) {
      return true;
    }
    if (unavailableMessages.test(current.message)) return true;
    current = current.cause;
  }
  return false;
}

const statusCodes: Record<number, ProblemCode> = {
  400: 'MALFORMED_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  414: 'URI_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
};

/**
 * Maps any thrown value to the AppError that describes it to a client; with the request,
 * a 415 names the media types its operation accepts.
 */
export function toAppError(error: unknown, request: FastifyRequest): AppError {
  if (error instanceof AppError) return error;
  // Services return domain errors rather than throw them; one thrown all the same is
  // still told truthfully (and, if its status is not declared, caught by status validation).
  if (error instanceof DomainError) return appErrorOf(error as AnyDomainError, request);
  if (!(error instanceof Error)) return internal;
  const fastifyError = error as FastifyError & { errors?: unknown[] };

  // fastify-openapi-glue wraps the security handlers' errors in one SecurityError.
  if (Array.isArray(fastifyError.errors) && fastifyError.name === 'Unauthorized') {
    const cause = fastifyError.errors.find(
      (e): e is AppError | DomainError => e instanceof AppError || e instanceof DomainError,
    );
    if (cause instanceof DomainError) return appErrorOf(cause as AnyDomainError, request);
    if (cause) return cause;
    // A security handler that failed for another reason (the database it checks the
    // account in) is the server's trouble, told as such (503 or 500), never as a 401.
    const failure: unknown = fastifyError.errors.find((e) => e instanceof Error);
    return failure ? toAppError(failure, request) : new UnauthorizedError();
  }
  // A reply that breaks the contract is the server's fault, whatever `validation` it carries.
  if (fastifyError.code?.startsWith('FST_RESPONSE_VALIDATION')) return internal;
  if (fastifyError.validation) {
    return new ValidationError(
      'The request does not match the API contract.',
      validationItems(fastifyError.validation, fastifyError.validationContext),
    );
  }
  const known = fastifyError.code ? fastifyClientErrors[fastifyError.code] : undefined;
  if (known) return known(request);
  if (error instanceof SyntaxError && fastifyError.statusCode === 400) {
    return new MalformedRequestError('The body is not valid JSON.');
  }

  const database = databaseErrorOf(error);
  // Class 22 is "data exception": a value PostgreSQL cannot take (the spec should have
  // refused it first, but a client's input must never become a 500).
  if (database?.code?.startsWith('22')) {
    return new ValidationError('A value in the request cannot be stored.', []);
  }
  if (isDatabaseUnavailable(error)) return new ServiceUnavailableError();

  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    const code = statusCodes[status] ?? 'MALFORMED_REQUEST';
    // The title of the problem type, which a problem of that type must not contradict.
    const { title } = problemTypeOf(code);
    return new AppError(statusCodes[status] ? status : 400, code, title, error.message);
  }
  return internal;
}

/**
 * A problem lists at most this many items (the spec's Problem.errors maxItems): a body of
 * 1 MiB with thousands of unknown or invalid fields would otherwise get an answer many
 * times its own size.
 */
const MAX_PROBLEM_ITEMS = 100;

/**
 * The spec's maxLength of the texts of a problem that can quote the request (a path in a
 * detail, a property name in a pointer, the URL): a longer one is cut, ending in `…`.
 */
const MAX_LENGTH = { detail: 1000, instance: 16384, pointer: 1000, message: 500 } as const;

/** `text` cut to `max` characters (code points, as the spec counts them) at most. */
function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  // A UTF-16 unit is at most one code point: max - 1 units and `…` are within max.
  let cut = text.slice(0, max - 1);
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}…`;
}

export function problemOf(error: AppError, request: FastifyRequest): Problem {
  return {
    type: problemTypeUri(error.code),
    title: error.title,
    status: error.status,
    detail: clip(error.message, MAX_LENGTH.detail),
    // The URL asked for (a request without Host is routed elsewhere: client-errors.ts).
    instance: clip(
      request.originalUrl.split('?', 1)[0] ?? request.originalUrl,
      MAX_LENGTH.instance,
    ),
    code: error.code,
    ...(error.errors && error.errors.length > 0
      ? {
          errors: error.errors.slice(0, MAX_PROBLEM_ITEMS).map((item) => ({
            location: item.location,
            pointer: clip(item.pointer, MAX_LENGTH.pointer),
            message: clip(item.message, MAX_LENGTH.message),
          })),
        }
      : {}),
  };
}

/**
 * Drizzle puts a failed query's parameters in its error message (an email address, a
 * password hash): the log gets the SQL and the database's own error, not the values.
 */
export function loggableError(error: unknown): unknown {
  if (error instanceof DrizzleQueryError) {
    const frames = error.stack?.split('\n').filter((line) => line.trimStart().startsWith('at '));
    const { cause } = error;
    const code = (cause as { code?: unknown } | undefined)?.code;
    return {
      type: 'DrizzleQueryError',
      query: error.query,
      cause: cause && { message: cause.message, code },
      stack: frames?.join('\n'),
    };
  }
  return error;
}

export function sendProblem(error: unknown, request: FastifyRequest, reply: FastifyReply) {
  const appError = toAppError(error, request);
  // A request shed under load is no failure of its own (and there are many at once).
  if (appError.status >= 500 && appError.code !== 'OVERLOADED') {
    request.log.error({ err: loggableError(error) }, 'request failed');
  } else {
    request.log.info({ code: appError.code, status: appError.status }, appError.message);
  }
  if (appError.headers) reply.headers(appError.headers);
  return (
    reply
      .code(appError.status)
      .type('application/problem+json')
      // Router errors (frameworkErrors) are answered without the onSend hooks that set it.
      .header('x-request-id', request.id)
      .send(problemOf(appError, request))
  );
}

/**
 * Errors, unmatched requests among them: a path of the spec asked with a method it does not
 * have is a 405 with `Allow` (`allowedMethods` says which it has), any other a 404, and an
 * HTTP/1.1 request without Host (routed to HOSTLESS_PATH) a 400.
 */
export function registerErrorHandling(app: FastifyInstance, allowedMethods: AllowedMethods): void {
  app.setErrorHandler((error, request, reply) => sendProblem(error, request, reply));
  const notFound = (request: FastifyRequest, reply: FastifyReply) => {
    if (request.url === HOSTLESS_PATH) {
      // As Node.js would have: the connection is closed after it (RFC 9112 §3.2).
      reply.header('connection', 'close');
      const error = new MalformedRequestError('An HTTP/1.1 request must have a Host header.');
      return sendProblem(error, request, reply);
    }
    const path = request.url.split('?', 1)[0] ?? request.url;
    const allowed = allowedMethods(path);
    const error =
      allowed.length > 0
        ? new AppError(
            405,
            'METHOD_NOT_ALLOWED',
            'Method not allowed',
            `${request.method} is not a method of ${path}; its methods are ${allowed.join(', ')}.`,
            undefined,
            { allow: allowed.join(', ') },
          )
        : new AppError(404, 'NOT_FOUND', 'Not found', `No route for ${request.method} ${path}.`);
    return sendProblem(error, request, reply);
  };
  app.setNotFoundHandler(notFound);
  // Fastify reads the body of a request no route matches before calling the 404 handler,
  // which would answer 413, 415 or 400 about a body sent to a path that does not exist.
  // A callback hook: every request passes it, and an async one costs a promise each.
  app.addHook('onRequest', (request, reply, done) => {
    // The connection is gone already: Node.js refused the rest of the request (a bad chunk
    // right behind the headers, client-errors.ts) or the client hung up. Nobody is there to
    // answer, and a gone socket has no address to count a rate limit by.
    if (request.raw.socket?.destroyed === true) {
      reply.hijack();
      return done();
    }
    if (!request.is404) return done();
    void notFound(request, reply);
  });
}

/**
 * The error handler, the not-found handler and its early hook, at the root: every error
 * and every unmatched request of the app becomes a problem.
 */
export const problems = fp<{ allowedMethods: AllowedMethods }>(
  async (app, { allowedMethods }) => registerErrorHandling(app, allowedMethods),
  { name: 'problems' },
);
