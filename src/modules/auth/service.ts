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
import type { LoginLimits } from './login-limits.js';
import type { TokenService } from './tokens.js';

export type LoginInput = Schemas['LoginRequest'];
export type LoginResult = Schemas['LoginResponse'];

export interface AuthService {
  login(
    input: LoginInput,
  ): Promise<
    Outcome<LoginResult, InvalidCredentialsError | AccountDisabledError | TooManyAttemptsError>
  >;
  me(principal: Principal): Promise<Outcome<User, UnauthenticatedError>>;
}

export function createAuthService(deps: {
  users: UsersRepository;
  passwords: PasswordHasher;
  tokens: Pick<TokenService, 'issue'>;
  loginLimits: LoginLimits;
}): AuthService {
  const { users, passwords, tokens, loginLimits } = deps;
  return {
    async login({ email, password }) {
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
      return ok({ ...tokens.issue(credentials.user.id), user: credentials.user });
    },

    async me(principal) {
      const user = await users.findById(principal.userId);
      // A valid token of a deleted account: the caller is nobody any more.
      return user
        ? ok(user)
        : fail(new UnauthenticatedError('The account of this access token no longer exists.'));
    },
  };
}

/**
 * The caller of a secured operation: a valid access token of an account that still exists
 * and is active, checked on every request (one look-up by primary key), so that a token
 * dies with its account's deletion or deactivation rather than at its expiry.
 */
export function createAuthenticator(deps: {
  tokens: Pick<TokenService, 'authenticate'>;
  users: Pick<UsersRepository, 'findById'>;
}): (request: FastifyRequest) => Promise<Principal> {
  return async (request) => {
    const claims = await deps.tokens.authenticate(request);
    const user = await deps.users.findById(claims.userId);
    if (!user) throw new UnauthenticatedError('The account of this access token no longer exists.');
    if (!user.isActive)
      throw new UnauthenticatedError('The account of this access token is disabled.');
    return { userId: user.id, role: user.role, sessionId: claims.sessionId };
  };
}
