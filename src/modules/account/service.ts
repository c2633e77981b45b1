import type { Schemas } from '../../api-types.js';
import {
  ConflictError,
  InvalidInputError,
  UnauthenticatedError,
  fail,
  ok,
  type Outcome,
} from '../../errors.js';
import { hashOpaqueToken } from '../../lib/opaque-tokens.js';
import { passwordTooLong, type PasswordHasher } from '../../lib/passwords.js';
import type { Principal } from '../../lib/principal.js';
import type { AccountMail } from '../email/account-mail.js';
import type { AccountRepository } from './repository.js';

export type Accepted = Schemas['Accepted'];
export type ForgotPasswordInput = Schemas['ForgotPasswordRequest'];
export type ResetPasswordInput = Schemas['ResetPasswordRequest'];
export type VerifyEmailInput = Schemas['VerifyEmailRequest'];

export interface AccountService {
  requestPasswordReset(input: ForgotPasswordInput): Promise<Accepted>;
  resetPassword(input: ResetPasswordInput): Promise<Outcome<void, InvalidInputError>>;
  verifyEmail(input: VerifyEmailInput): Promise<Outcome<void, InvalidInputError>>;
  resendVerification(
    principal: Principal,
  ): Promise<Outcome<Accepted, ConflictError | UnauthenticatedError>>;
}

export const PASSWORD_RESET_ACCEPTED =
  'If an account uses this address, a reset link is on its way.';

export function createAccountService(deps: {
  accounts: AccountRepository;
  passwords: Pick<PasswordHasher, 'hash'>;
  mail: AccountMail;
}): AccountService {
  const { accounts, passwords, mail } = deps;
  return {
    async requestPasswordReset({ email }) {
      // Known address or not, active account or not, sent a minute ago or not: the same
      // transaction and statements run (only whether rows are inserted differs), and the
      // answer is the same, so neither its body nor its timing says who has an account.
      await accounts.withActiveAccountByEmail(email, (tx, account) =>
        mail.sendPasswordReset(tx, account, email),
      );
      mail.nudge();
      return { message: PASSWORD_RESET_ACCEPTED };
    },

    async resetPassword({ token, newPassword }) {
      const tooLong = passwordTooLong(newPassword, 'newPassword');
      if (tooLong) return fail(tooLong);
      const invalid = () =>
        fail(
          new InvalidInputError(
            'token',
            'is not a valid password reset token (expired, used already, or unknown)',
            'This password reset link is not valid. Ask for a new one.',
          ),
        );
      const tokenHash = hashOpaqueToken(token);
      // The token first: a guessed, used or expired one costs a lookup, never a bcrypt hash
      // (which a flood of bad tokens would otherwise buy by the hundred).
      if (!(await accounts.isLiveResetToken(tokenHash))) return invalid();
      // Hashed before the transaction, which then holds its locks for milliseconds, not
      // for the length of a bcrypt hash; the transaction checks the token again and uses
      // it up (of two resets with one token, one wins).
      const passwordHash = await passwords.hash(newPassword);
      if (!(await accounts.resetPassword(tokenHash, passwordHash))) return invalid();
      return ok(undefined);
    },

    async verifyEmail({ token }) {
      switch (await accounts.verifyEmail(hashOpaqueToken(token))) {
        case 'verified':
          return ok(undefined);
        case 'address-changed':
          return fail(
            new InvalidInputError(
              'token',
              "was sent to another address than the account's",
              'This verification link was sent to an address the account no longer uses.',
            ),
          );
        case 'invalid-token':
          return fail(
            new InvalidInputError(
              'token',
              'is not a valid verification token (expired, used already, or unknown)',
              'This verification link is not valid. Ask for a new one.',
            ),
          );
      }
    },

    async resendVerification(principal) {
      const outcome = await accounts.withAccountById(principal.userId, async (tx, account) => {
        if (!account) {
          return fail(
            new UnauthenticatedError('The account of this access token no longer exists.'),
          );
        }
        if (account.emailVerified) {
          return fail(
            new ConflictError(
              'This email address is verified already.',
              'email',
              'is verified already',
            ),
          );
        }
        // Within a minute of the last one, nothing is sent, and the answer is the same.
        await mail.sendVerification(tx, account, { throttle: true });
        return ok({ message: `A verification link is on its way to ${account.email}.` });
      });
      if (outcome.ok) mail.nudge();
      return outcome;
    },
  };
}
