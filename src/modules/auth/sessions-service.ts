import type { Schemas } from '../../api-types.js';
import {
  InvalidInputError,
  NotFoundError,
  UnauthenticatedError,
  type TooManyAttemptsError,
  fail,
  ok,
  type Outcome,
} from '../../errors.js';
import { hashOpaqueToken, newOpaqueToken } from '../../lib/opaque-tokens.js';
import { passwordTooLong, type PasswordHasher } from '../../lib/passwords.js';
import type { Principal } from '../../lib/principal.js';
import type { User, UsersRepository } from '../users/repository.js';
import type { Rotation, SessionsRepository, StartedSession } from './sessions-repository.js';
import type { LoginLimits } from './login-limits.js';
import type { TokenService } from './tokens.js';

export type TokenPair = Schemas['TokenPair'];
export type Session = Schemas['Session'];
export type SessionList = Schemas['SessionList'];
export type ChangePasswordInput = Schemas['ChangePasswordRequest'];

/** Where a login comes from, as recorded with its session. */
export interface Client {
  userAgent: string | undefined;
  ipAddress: string | undefined;
}

export interface SessionsService {
  /** A new session for an account whose credentials were checked; null if it was deleted meanwhile. */
  start(user: User, client: Client): Promise<TokenPair | null>;
  refresh(refreshToken: string): Promise<Outcome<TokenPair, UnauthenticatedError>>;
  /** Ends the caller's session. */
  logout(principal: Principal): Promise<void>;
  /** Ends every session of the caller's account. */
  logoutAll(principal: Principal): Promise<void>;
  list(principal: Principal): Promise<SessionList>;
  revoke(principal: Principal, sessionId: string): Promise<Outcome<undefined, NotFoundError>>;
  changePassword(
    principal: Principal,
    input: ChangePasswordInput,
  ): Promise<Outcome<TokenPair, InvalidInputError | UnauthenticatedError | TooManyAttemptsError>>;
}

/** The columns' sizes (src/db/schema/auth.ts); a longer User-Agent is cut, not refused. */
const MAX_USER_AGENT = 512;
const MAX_IP_ADDRESS = 45;

/** Text as a varchar column can hold it: cut to length, without NUL (which PostgreSQL refuses). */
function storable(value: string | undefined, length: number): string | null {
  if (value === undefined) return null;
  const text = value.replace(/\0/g, '').slice(0, length);
  return text === '' ? null : text;
}

const refusals: Record<Exclude<Rotation['status'], 'rotated'>, string> = {
  'unknown-token': 'The refresh token is not valid. Log in again.',
  reused: 'This refresh token was already used. Its session has been ended; log in again.',
  'account-disabled': 'The account of this refresh token is disabled.',
  'session-revoked': 'The session of this refresh token has ended. Log in again.',
  'session-expired': 'The session of this refresh token has expired. Log in again.',
  'session-idle':
    'The session of this refresh token has expired after a period without use. Log in again.',
};

const sessionEnded = () =>
  new UnauthenticatedError('The session of this access token has ended. Log in again.');

interface SessionsServiceDeps {
  sessions: SessionsRepository;
  users: Pick<UsersRepository, 'findCredentialsById'>;
  passwords: PasswordHasher;
  tokens: Pick<TokenService, 'issue'>;
  /** A current password is a credential too: its wrong guesses count as failed logins. */
  loginLimits: Pick<LoginLimits, 'admit' | 'succeeded'>;
}

function pairOf(
  tokens: SessionsServiceDeps['tokens'],
  userId: string,
  role: Schemas['Role'],
  session: StartedSession,
  refreshToken: string,
): TokenPair {
  return {
    ...tokens.issue(userId, role, session.sessionId),
    refreshToken,
    refreshTokenExpiresAt: session.expiresAt,
  };
}

async function changePassword(
  { sessions, users, passwords, tokens, loginLimits }: SessionsServiceDeps,
  principal: Principal,
  { currentPassword, newPassword }: ChangePasswordInput,
): ReturnType<SessionsService['changePassword']> {
  const tooLong = passwordTooLong(newPassword, 'newPassword');
  if (tooLong) return fail(tooLong);
  const credentials = await users.findCredentialsById(principal.userId);
  if (!credentials) {
    // Deleted since the request was authenticated; as slow as a wrong password.
    await passwords.verifyNothing(currentPassword);
    return fail(new UnauthenticatedError('The account of this access token no longer exists.'));
  }
  // Someone holding a stolen access token must not get more guesses here than at login.
  const locked = await loginLimits.admit(credentials.user.email);
  if (locked) return fail(locked);
  if (!(await passwords.verify(currentPassword, credentials.passwordHash))) {
    return fail(
      new InvalidInputError(
        'currentPassword',
        'is not the current password',
        'The current password is wrong.',
      ),
    );
  }
  await loginLimits.succeeded(credentials.user.email);
  const refresh = newOpaqueToken();
  const session = await sessions.changePassword({
    userId: principal.userId,
    sessionId: principal.sessionId,
    passwordHash: await passwords.hash(newPassword),
    refreshTokenHash: refresh.hash,
  });
  if (!session) return fail(sessionEnded());
  return ok(pairOf(tokens, principal.userId, credentials.user.role, session, refresh.token));
}

export function createSessionsService(deps: SessionsServiceDeps): SessionsService {
  const { sessions, tokens } = deps;

  return {
    async start(user, client) {
      const refresh = newOpaqueToken();
      const session = await sessions.create({
        userId: user.id,
        userAgent: storable(client.userAgent, MAX_USER_AGENT),
        ipAddress: storable(client.ipAddress, MAX_IP_ADDRESS),
        refreshTokenHash: refresh.hash,
      });
      return session ? pairOf(tokens, user.id, user.role, session, refresh.token) : null;
    },

    async refresh(refreshToken) {
      const successor = newOpaqueToken();
      const rotation = await sessions.rotate(hashOpaqueToken(refreshToken), successor.hash);
      if (rotation.status !== 'rotated') {
        return fail(new UnauthenticatedError(refusals[rotation.status]));
      }
      return ok(pairOf(tokens, rotation.userId, rotation.role, rotation, successor.token));
    },

    async logout(principal) {
      // Already ended (a concurrent logout): the caller's wish holds all the same.
      await sessions.revoke(principal.userId, principal.sessionId, 'logout');
    },

    async logoutAll(principal) {
      await sessions.revokeAll(principal.userId, 'logout-all');
    },

    async list(principal) {
      const records = await sessions.listLive(principal.userId);
      return {
        items: records.map((record) => ({
          ...record,
          current: record.id === principal.sessionId,
        })),
      };
    },

    async revoke(principal, sessionId) {
      // Another user's session is answered like a missing one: its existence is not told.
      return (await sessions.revoke(principal.userId, sessionId.toLowerCase(), 'revoked'))
        ? ok(undefined)
        : fail(new NotFoundError('Session'));
    },

    async changePassword(principal, input) {
      return changePassword(deps, principal, input);
    },
  };
}
