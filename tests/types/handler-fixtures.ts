/**
 * Compile-time guarantees of the handler map, checked by `tsc` in `npm run check` (this
 * file is type-checked, never run): each
 * `@ts-expect-error` below must meet an error, or the type check itself fails. Were the
 * typing loosened (a handler map that accepted anything), these lines would stop erroring
 * and `npm run check` would fail.
 */
import type { components } from '../../generated/api.js';
import type { Handler, Handlers } from '../../src/http/handler-types.js';

type PublicUser = components['schemas']['PublicUser'];
type Problem = components['schemas']['Problem'];

declare const handlers: Handlers;
declare const publicUser: PublicUser;
declare const problem: Problem;

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
  return reply(200, { ...publicUser, id: userId });
};
export const unknownBodyField: Handler<'createUser'> = async ({ body }) => {
  // @ts-expect-error createUser's body has no isActive
  const active: boolean = body.isActive;
  throw new Error(String(active));
};

// The well-typed versions compile.
export const wellTyped: Handler<'getUser'> = async ({ params, reply }) =>
  params.id === publicUser.id ? reply(200, publicUser) : reply(404, problem);
