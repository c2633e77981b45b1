import type { ProblemCode, Schemas } from '../api-types.js';

export type ProblemType = Schemas['ProblemType'];

/**
 * What each kind of problem means, served at its `type` URI by getProblemType. Keyed by
 * the codes of the spec's Problem schema, so a code added there without an explanation
 * here does not compile, and neither does an explanation of a code the spec lost.
 */
const explanations = {
  VALIDATION_ERROR: {
    status: 400,
    title: 'Validation failed',
    description:
      "The request does not match this API's contract: a value has the wrong type, format or length, a required field is missing, or the body has a field the operation does not know (or a key such as `__proto__` that could change the prototype of an object). `errors` lists each offending value, with the part of the request it is in (`location`) and a JSON pointer to it (`pointer`). Correct those values before sending the request again: sent unchanged, it fails the same way.",
  },
  MALFORMED_REQUEST: {
    status: 400,
    title: 'Malformed request',
    description:
      'The request could not be read: it is not valid HTTP/1.1 (a malformed request line or header, conflicting `Content-Length` and `Transfer-Encoding`, a bad chunk, no `Host`), or its body is not valid JSON or not valid UTF-8, or is empty while `Content-Type` says JSON, or its URL is not correctly percent-encoded. `detail` says which. Fix how the client encodes the request; the values in it were not looked at yet.',
  },
  UNAUTHORIZED: {
    status: 401,
    title: 'Unauthorized',
    description:
      'The operation needs `Authorization: Bearer <accessToken>`, and none was sent, or the token is malformed, expired or forged, or its session has ended (logged out, revoked, expired, or idle for too long), or its account has since been deleted or disabled. For `refreshToken`, the refresh token is unknown, already used or revoked. Get a new access token (`POST /api/auth/refresh` while the session lasts, else `POST /api/auth/login`) and send the request again with it.',
  },
  INVALID_CREDENTIALS: {
    status: 401,
    title: 'Invalid credentials',
    description:
      'The email address or the password sent to `login` is wrong; which of the two is not said, on purpose. Check both before trying again: every attempt counts against the login rate limit.',
  },
  ACCOUNT_DISABLED: {
    status: 403,
    title: 'Account disabled',
    description:
      'The password is right, but the account is disabled and cannot log in. Retrying does not help: the account has to be enabled again first.',
  },
  FORBIDDEN: {
    status: 403,
    title: 'Forbidden',
    description:
      'The access token is valid, but its user may not do this to this resource (for example, change or delete another user’s account, change a role, or use an operation for admins only). Another token of the same user gets the same answer: act on your own resources only, or ask an admin.',
  },
  NOT_FOUND: {
    status: 404,
    title: 'Not found',
    description:
      'There is nothing at this URL: the resource does not exist (or no longer does), or no operation has this path. Check the id and the path against this API’s document, `GET /openapi.json`.',
  },
  METHOD_NOT_ALLOWED: {
    status: 405,
    title: 'Method not allowed',
    description:
      'The path is one of this API’s, but none of its operations has this method (a `PUT` where there is only `PATCH`, say). `Allow` lists the methods the path has. Check the method against this API’s document, `GET /openapi.json`.',
  },
  REQUEST_TIMEOUT: {
    status: 408,
    title: 'Request timeout',
    description:
      'The request did not arrive in time: its headers took longer than the server waits for them (10 seconds from the connection or the previous response, unless the server is configured otherwise), or the whole request longer than 30 seconds. The server closed the connection. Send the request again on a new connection, headers and body without pausing.',
  },
  CONFLICT: {
    status: 409,
    title: 'Conflict',
    description:
      'A value that must be unique is already taken, such as an email address or a username (compared regardless of case): choose another value and send the request again. Or the resource is already in the state the request asks for (an email address verified already): do not ask again. Or the change would leave the API without an active admin (demoting, disabling or deleting the last one): make another account an admin first. `errors` points at the field, when there is one.',
  },
  PRECONDITION_FAILED: {
    status: 412,
    title: 'Precondition failed',
    description:
      'The request carried `If-Match` with an `ETag`, and the resource has changed since that version (somebody else edited, published or unpublished it): nothing was changed, so no edit is lost. Read the resource again (`GET`), apply your change to what is there now, and send it with the new `ETag`. New views of a post are not changes.',
  },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    title: 'Payload too large',
    description:
      'The request body is larger than the server accepts (1 MiB unless the server is configured otherwise), or, sent in chunks, its chunk extensions are larger than the server reads. Send a smaller body.',
  },
  URI_TOO_LONG: {
    status: 414,
    title: 'URI too long',
    description:
      'A path parameter is longer than the server accepts (255 characters, the longest slug a post can have). Ids are UUIDs of 36 characters: check how the client builds the URL.',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    title: 'Unsupported media type',
    description:
      'The body was sent without a `Content-Type`, or with one the operation does not accept. Send it as a media type the operation declares for its request body: `application/json`, or for `updateUser` also `application/merge-patch+json`. `detail` names those of the operation.',
  },
  RATE_LIMITED: {
    status: 429,
    title: 'Too many requests',
    description:
      'This client address has used up its requests for now: to all the operations together (by default 3000 a minute), or to this operation when it has a limit of its own (by default 30 sign-ups and 100 logins a minute), or, for a login, its email address has had too many failed logins (by default 10 in 15 minutes, counted whatever the client; until the window ends, even the right password is refused). Wait the number of seconds in `Retry-After` before trying again; `X-RateLimit-Remaining` on every response of an operation says how many requests the client address has left (of the limit nearest its end).',
  },
  HEADERS_TOO_LARGE: {
    status: 431,
    title: 'Request header fields too large',
    description:
      'The request line and headers together are larger than the server takes (16 KiB unless the server is configured otherwise); `detail` says how many bytes. The server closed the connection without reading the request. Send fewer or shorter headers, or a shorter URL.',
  },
  INTERNAL_ERROR: {
    status: 500,
    title: 'Internal server error',
    description:
      'Something failed on the server; the problem says nothing more about it, on purpose. Try again later. If it keeps failing, report it with the `X-Request-Id` of the response.',
  },
  SERVICE_UNAVAILABLE: {
    status: 503,
    title: 'Service unavailable',
    description:
      'The server cannot reach its database, or the database did not answer in time. This is temporary: try again after a short wait, backing off if it goes on. `GET /ready` answers 200 once the service is ready again.',
  },
  OVERLOADED: {
    status: 503,
    title: 'Overloaded',
    description:
      'The server is too busy to take the request in good time (its event loop is late, or its memory is short), so it refused it at once, before doing anything for it. Nothing was changed. Wait the number of seconds in `Retry-After` before sending it again (another instance may answer meanwhile), and back off if it goes on.',
  },
} as const satisfies Record<ProblemCode, Omit<ProblemType, 'type' | 'code'>>;

/** The `type` of the problems with this code: `/problems/` and the code in kebab-case. */
/** The status every problem of code C has (a literal type: the compiler checks it too). */
export type StatusOfProblem<C extends ProblemCode> = (typeof explanations)[C]['status'];

export function problemTypeUri(code: ProblemCode): string {
  return `/problems/${code.toLowerCase().replace(/_/g, '-')}`;
}

export function problemTypeOf(code: ProblemCode): ProblemType {
  return { type: problemTypeUri(code), code, ...explanations[code] };
}

const byUri = new Map(
  (Object.keys(explanations) as ProblemCode[]).map((code) => [problemTypeUri(code), code]),
);

/** The kind of problem whose `type` is `/problems/{name}`, if there is one. */
export function problemTypeNamed(name: string): ProblemType | undefined {
  const code = byUri.get(`/problems/${name}`);
  return code === undefined ? undefined : problemTypeOf(code);
}
