import {
  AccountDisabledError,
  InvalidCredentialsError,
  UnauthorizedError,
} from '../../http/errors.js';
import type { Principal, Schemas } from '../../http/handler-types.js';
import type { User, UsersRepository } from '../users/repository.js';
import type { PasswordHasher } from './passwords.js';
import type { TokenService } from './tokens.js';

export type LoginInput = Schemas['LoginRequest'];
export type LoginResult = Schemas['LoginResponse'];

export interface AuthService {
  login(input: LoginInput): Promise<LoginResult>;
  me(principal: Principal): Promise<User>;
}

export function createAuthService(deps: {
  users: UsersRepository;
  passwords: PasswordHasher;
  tokens: Pick<TokenService, 'issue'>;
}): AuthService {
  const { users, passwords, tokens } = deps;
  return {
    async login({ email, password }) {
      const credentials = await users.findCredentialsByEmail(email);
      if (!credentials) {
        // As slow as a wrong password, so response times do not reveal who has an account.
        await passwords.verifyNothing(password);
        throw new InvalidCredentialsError();
      }
      if (!(await passwords.verify(password, credentials.passwordHash))) {
        throw new InvalidCredentialsError();
      }
      if (!credentials.user.isActive) throw new AccountDisabledError();
      return { ...tokens.issue(credentials.user.id), user: credentials.user };
    },

    async me(principal) {
      const user = await users.findById(principal.userId);
      // A valid token of a deleted account: the caller is nobody any more.
      if (!user) throw new UnauthorizedError('The account of this access token no longer exists.');
      return user;
    },
  };
}
