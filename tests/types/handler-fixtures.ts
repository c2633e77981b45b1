/**
 * Compile-time guarantees of the handler map, checked by `tsc` in `npm run check` (this
 * file is type-checked, never run): each
 * `@ts-expect-error` below must meet an error, or the type check itself fails. Were the
 * typing loosened (a handler map that accepted anything), these lines would stop erroring
 * and `npm run check` would fail.
 */
import type { components } from '../../generated/api.js';
import {
  ConflictError,
  NotFoundError,
  UnavailableError,
  type InvalidInputError,
  type Outcome,
} from '../../src/errors.js';
import type {
  Handler,
  HandlerInput,
  HandlerResult,
  Handlers,
  ResponseBody,
  StatusOf,
} from '../../src/http/handler-types.js';

type PublicUser = components['schemas']['PublicUser'];
type Problem = components['schemas']['Problem'];

declare const handlers: Handlers;
/** What getUser's and listUsers' 200 must carry (the spec requires both headers). */
const readHeaders = { ETag: '"0123456789abcdef"', 'Cache-Control': 'public, no-cache' } as const;
declare const publicUser: PublicUser;
declare const problem: Problem;
declare const profileOrMissing: Outcome<PublicUser, NotFoundError>;
declare const profileOrConflict: Outcome<PublicUser, NotFoundError | ConflictError>;
declare const pageOrBadCursor: Outcome<components['schemas']['PublicUserPage'], InvalidInputError>;

/** Compiles only when A and B are the same type. */
type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const same = <A, B>(proof: Equal<A, B>) => proof;

// A handler map without getUser does not compile.
const { getUser: _dropped, ...withoutGetUser } = handlers;
// @ts-expect-error getUser is missing
export const missingHandler: Handlers = withoutGetUser;

// A handler for an operation the spec does not have does not compile.
export const extraHandler: Handlers = {
  ...handlers,
  // @ts-expect-error listPosts is not an operation of the spec
  listPosts: handlers.listUsers,
};

// A body that lacks required fields does not compile.
export const incompleteBody: Handler<'getUser'> = async ({ reply }) =>
  // @ts-expect-error username, firstName, lastName and createdAt are missing
  reply(200, { id: 'x' });

// A field the schema does not declare does not compile (in a literal; a value built
// elsewhere is stopped at run time by response validation and the serialiser instead).
export const undeclaredField: Handler<'getUser'> = async ({ reply }) =>
  // @ts-expect-error passwordHash is not part of PublicUser
  reply(200, { ...publicUser, passwordHash: 'secret' });

// A status the spec does not declare for the operation does not compile.
export const undeclaredStatus: Handler<'getUser'> = async ({ reply }) =>
  // @ts-expect-error getUser declares no 418
  reply(418, problem);

export const undeclaredErrorStatus: Handler<'getMe'> = async ({ reply }) =>
  // @ts-expect-error getMe declares no 404
  reply(404, problem);

// The body of one status cannot be sent with another.
export const mismatchedBody: Handler<'getUser'> = async ({ reply }) =>
  // @ts-expect-error a 404 carries a Problem, not a PublicUser
  reply(404, publicUser);

// A result not made by `reply` (so not checked field by field) does not compile.
// @ts-expect-error a plain object is not a HandlerResult
export const handMadeResult: Handler<'getUser'> = async () => ({ status: 200, body: publicUser });

// Request fields are typed from the spec: unknown ones do not compile.
export const unknownParam: Handler<'getUser'> = async ({ params, reply }) => {
  // @ts-expect-error the path parameter is `id`
  const userId: string = params.userId;
  return reply(200, { ...publicUser, id: userId }, readHeaders);
};
export const unknownBodyField: Handler<'createUser'> = async ({ body }) => {
  // @ts-expect-error createUser's body has no isActive
  const active: boolean = body.isActive;
  throw new Error(String(active));
};

// A domain error whose status the operation does not declare does not compile, whether
// it comes in a service's outcome or on its own: getHealth declares no 409, getUser no 409.
export const undeclaredDomainError: Handler<'getHealth'> = async ({ refuse }) =>
  // @ts-expect-error getHealth declares no 409 (ConflictError)
  refuse(new ConflictError('taken', 'email'));
export const undeclaredOutcomeError: Handler<'getUser'> = async ({ respond }) =>
  // @ts-expect-error getUser declares no 409, and this outcome can be a ConflictError
  respond(200, profileOrConflict);
export const undeclaredUnavailable: Handler<'getHealth'> = async ({ refuse }) =>
  // @ts-expect-error getHealth never touches the database: it declares no 503
  refuse(new UnavailableError());
// An outcome's value must match the body of the status it is sent with.
export const outcomeOfAnotherBody: Handler<'getUser'> = async ({ respond }) =>
  // @ts-expect-error a PublicUserPage is not a PublicUser
  respond(200, pageOrBadCursor, readHeaders);

// A header the response does not declare does not compile; a declared one does.
export const undeclaredHeader: Handler<'getUser'> = async ({ reply }) =>
  // @ts-expect-error getUser's 200 declares ETag and Cache-Control, not Location
  reply(200, publicUser, { Location: '/x' });
export const misnamedHeader: Handler<'createUser'> = async ({ reply, body }) =>
  // @ts-expect-error createUser's 201 declares Location, not X-Location
  reply(201, { ...body, id: 'x' } as never, { 'X-Location': '/x' });
// A header the spec requires must be sent: tokens go out with Cache-Control: no-store.
export const missingRequiredHeader: Handler<'refreshToken'> = async ({ respond, body }) =>
  // @ts-expect-error refreshToken's 200 requires Cache-Control
  respond(200, { ok: true, value: body as never });
export const wrongRequiredHeader: Handler<'refreshToken'> = async ({ respond, body }) =>
  // @ts-expect-error Cache-Control can only be no-store
  respond(200, { ok: true, value: body as never }, { 'Cache-Control': 'max-age=60' });
export const requiredHeaderSent: Handler<'refreshToken'> = async ({ respond, body }) =>
  respond(200, { ok: true, value: body as never }, { 'Cache-Control': 'no-store' });
// The headers every response declares are the server's (X-Request-Id, the rate limits'
// X-RateLimit-*): a handler cannot send them, nor forget them.
export const serverSetHeader: Handler<'refreshToken'> = async ({ respond, body }) =>
  respond(
    200,
    { ok: true, value: body as never },
    // @ts-expect-error X-RateLimit-Remaining is sent by the rate limits, not by handlers
    { 'Cache-Control': 'no-store', 'X-RateLimit-Remaining': 1 },
  );

// The types follow generated/api.d.ts: request parts, statuses and bodies.
export const typedParts = [
  same<HandlerInput<'getUser'>['params'], { id: string }>(true),
  same<HandlerInput<'listUsers'>['query']['limit'], number | undefined>(true),
  same<HandlerInput<'createUser'>['body']['email'], string>(true),
  same<HandlerInput<'createUser'>['body']['firstName'], string | undefined>(true),
  same<StatusOf<'getMe'>, 200 | 401 | 429 | 500 | 503>(true),
  same<ResponseBody<'getUser', 200>, PublicUser>(true),
  same<ResponseBody<'getUser', 404>, Problem>(true),
  same<
    Extract<HandlerResult<'createUser'>, { status: 201; body: unknown }>['body'],
    components['schemas']['User']
  >(true),
  // @ts-expect-error the proof itself can fail: getMe declares no 404
  same<StatusOf<'getMe'>, 200 | 401 | 404 | 429 | 500 | 503>(true),
];

// The well-typed versions compile.
export const wellTyped: Handler<'getUser'> = async ({ params, reply }) =>
  params.id === publicUser.id ? reply(200, publicUser, readHeaders) : reply(404, problem);
export const wellTypedOutcome: Handler<'getUser'> = async ({ params, respond, refuse }) =>
  params.id === ''
    ? refuse(new NotFoundError('User'))
    : respond(200, profileOrMissing, readHeaders);
export const wellTypedList: Handler<'listUsers'> = async ({ respond }) =>
  respond(200, pageOrBadCursor, readHeaders);
