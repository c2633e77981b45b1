import type { FastifyRequest } from 'fastify';
import type { Schemas } from '../../api-types.js';
import {
  AccountDisabledError,
  InvalidCredentialsError,
  UnauthenticatedError,
  type TooManyAttemptsError,
  fail,
  ok,
  type Outcome,
} from '../../errors.js';
import type { PasswordHasher } from '../../lib/passwords.js';
import type { Principal } from '../../lib/principal.js';
import type { User, UsersRepository } from '../users/repository.js';
import type { SessionCheck, SessionsRepository } from './sessions-repository.js';
import type { Client, SessionsService } from './sessions-service.js';
import type { LoginLimits } from './login-limits.js';
import type { TokenClaims, TokenService } from './tokens.js';

export type LoginInput = Schemas['LoginRequest'];
export type LoginResult = Schemas['LoginResponse'];

export interface AuthService {
  login(
    input: LoginInput,
    client: Client,
  ): Promise<
    Outcome<LoginResult, InvalidCredentialsError | AccountDisabledError | TooManyAttemptsError>
  >;
  me(principal: Principal): Promise<Outcome<User, UnauthenticatedError>>;
}

export function createAuthService(deps: {
  users: UsersRepository;
  passwords: PasswordHasher;
  sessions: Pick<SessionsService, 'start'>;
  loginLimits: LoginLimits;
}): AuthService {
  const { users, passwords, sessions, loginLimits } = deps;
  return {
    async login({ email, password }, client) {
      // Counted before anything is looked up or hashed (see login-limits.ts).
      const locked = await loginLimits.admit(email);
      if (locked) return fail(locked);
      const credentials = await users.findCredentialsByEmail(email);
      if (!credentials) {
        // As slow as a wrong password, so response times do not reveal who has an account.
        await passwords.verifyNothing(password);
        return fail(new InvalidCredentialsError());
      }
      if (!(await passwords.verify(password, credentials.passwordHash))) {
        return fail(new InvalidCredentialsError());
      }
      await loginLimits.succeeded(email);
      if (!credentials.user.isActive) return fail(new AccountDisabledError());
      // Hashes made when the cost was lower get the current cost, now that the password
      // is at hand (it never is otherwise).
      if (passwords.needsRehash(credentials.passwordHash)) {
        await users.setPasswordHash(credentials.user.id, await passwords.hash(password));
      }
      const pair = await sessions.start(credentials.user, client);
      // Deleted since its password was checked: there is nobody to log in any more.
      if (!pair) return fail(new InvalidCredentialsError());
      return ok({ ...pair, user: credentials.user });
    },

    async me(principal) {
      // Read with the session by the authenticator, for this very request.
      return ok(principal.account);
    },
  };
}

const refusals: Record<Exclude<SessionCheck['status'], 'live'>, string> = {
  'account-deleted': 'The account of this access token no longer exists.',
  'account-disabled': 'The account of this access token is disabled.',
  'session-unknown': 'The access token is not valid.',
  'session-revoked': 'The session of this access token has ended. Log in again.',
  'session-expired': 'The session of this access token has expired. Log in again.',
  'session-idle':
    'The session of this access token has expired after a period without use. Log in again.',
};

/**
 * The caller of a secured operation: a valid access token whose session is live and whose
 * account still exists and is active, checked on every request (one statement, by primary
 * keys), so that a token dies with its session or its account rather than at its expiry.
 */
export function createAuthenticator(deps: {
  tokens: Pick<TokenService, 'authenticate'>;
  sessions: Pick<SessionsRepository, 'check'>;
}): (request: FastifyRequest) => Promise<Principal> {
  return async (request) => principalOf(deps.sessions, await deps.tokens.authenticate(request));
}

/** The same for a token given otherwise: a WebSocket's `auth` message. */
export function createTokenAuthenticator(deps: {
  tokens: Pick<TokenService, 'verify'>;
  sessions: Pick<SessionsRepository, 'check'>;
}): (token: string) => Promise<Principal> {
  return async (token) => principalOf(deps.sessions, deps.tokens.verify(token));
}

async function principalOf(
  sessions: Pick<SessionsRepository, 'check'>,
  claims: TokenClaims,
): Promise<Principal> {
  const found = await sessions.check(claims.userId, claims.sessionId);
  if (found.status !== 'live') throw new UnauthenticatedError(refusals[found.status]);
  return {
    userId: found.user.id,
    role: found.user.role,
    sessionId: claims.sessionId,
    account: found.user,
  };
}
