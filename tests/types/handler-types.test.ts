/** The handler types are computed from generated/api.d.ts; see handler-fixtures.ts for what they refuse. */
import { describe, expectTypeOf, it } from 'vitest';
import type { components } from '../../generated/api.js';
import type {
  HandlerInput,
  HandlerResult,
  ResponseBody,
  StatusOf,
} from '../../src/http/handler-types.js';

type PublicUser = components['schemas']['PublicUser'];
type Problem = components['schemas']['Problem'];

describe('handler types follow generated/api.d.ts', () => {
  it('types request parts from the spec', () => {
    expectTypeOf<HandlerInput<'getUser'>['params']>().toEqualTypeOf<{ id: string }>();
    expectTypeOf<HandlerInput<'listUsers'>['query']['limit']>().toEqualTypeOf<number | undefined>();
    expectTypeOf<HandlerInput<'createUser'>['body']['email']>().toEqualTypeOf<string>();
    expectTypeOf<HandlerInput<'createUser'>['body']['firstName']>().toEqualTypeOf<
      string | undefined
    >();
  });

  it('ties each declared status to its body', () => {
    expectTypeOf<StatusOf<'getMe'>>().toEqualTypeOf<200 | 401 | 500 | 503>();
    expectTypeOf<ResponseBody<'getUser', 200>>().toEqualTypeOf<PublicUser>();
    expectTypeOf<ResponseBody<'getUser', 404>>().toEqualTypeOf<Problem>();
    expectTypeOf<Extract<HandlerResult<'createUser'>, { status: 201 }>['body']>().toEqualTypeOf<
      components['schemas']['User']
    >();
  });
});
