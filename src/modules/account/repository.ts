import { sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { clearLoginFailures } from '../auth/login-failures-repository.js';
import { revokeUserSessions } from '../auth/session-rows.js';
import { consumeAllEmailTokens, consumeEmailToken, isLiveEmailToken } from '../email/tokens.js';
import {
  lockAccount,
  markEmailVerified,
  writePasswordHash,
  type AccountRecord,
} from '../users/repository.js';

export type { AccountRecord } from '../users/repository.js';

/** Work done in the transaction that holds the account's row locked. */
export type WithAccount<T> = (tx: Db, account: AccountRecord | null) => Promise<T>;

/**
 * The password reset and email verification flows: each function is one transaction, so
 * that a token is used up together with the change it allows, or not at all. This module
 * owns no table: each change is made by the owner of its table (src/db/owners.ts), in the
 * transaction opened here.
 */
export interface AccountRepository {
  /**
   * Locks the active account that uses this address (regardless of case), if any, and runs
   * `work` in that transaction, with the account or null: the same statements whether or
   * not the account exists.
   */
  withActiveAccountByEmail<T>(email: string, work: WithAccount<T>): Promise<T>;
  /** Locks the account with this id, if it exists, and runs `work` in that transaction. */
  withAccountById<T>(id: string, work: WithAccount<T>): Promise<T>;
  /** Whether this is an unused, unexpired password reset token (nothing is changed). */
  isLiveResetToken(tokenHash: string): Promise<boolean>;
  /**
   * Uses up a password reset token and, with it, sets the new password hash, uses up the
   * account's other reset tokens, ends all its sessions and clears its failed logins.
   * False (and nothing changed) when the token is not an unused, unexpired reset token.
   */
  resetPassword(tokenHash: string, passwordHash: string): Promise<boolean>;
  /**
   * Uses up a verification token and marks the address verified, if the account still uses
   * the address the token was sent to.
   */
  verifyEmail(tokenHash: string): Promise<'verified' | 'invalid-token' | 'address-changed'>;
}

class AddressChanged extends Error {}

export function createAccountRepository(db: Db): AccountRepository {
  return {
    async withActiveAccountByEmail(email, work) {
      return db.transaction(async (tx) => {
        // An asynchronous commit: a commit that wrote (a token and its email) would otherwise
        // wait for the disk and one that did not would not, which tells who has an account.
        // A crash of the database in the next fraction of a second could lose the email;
        // the person asks again.
        await tx.execute(sql`set local synchronous_commit = off`);
        const account = await lockAccount(tx, { activeEmail: email });
        return work(tx, account);
      });
    },

    async withAccountById(id, work) {
      return db.transaction(async (tx) => {
        return work(tx, await lockAccount(tx, { id }));
      });
    },

    isLiveResetToken: (tokenHash) => isLiveEmailToken(db, tokenHash, 'password_reset'),

    async resetPassword(tokenHash, passwordHash) {
      return db.transaction(async (tx) => {
        const token = await consumeEmailToken(tx, tokenHash, 'password_reset');
        if (!token) return false;
        const user = await writePasswordHash(tx, token.userId, passwordHash);
        if (!user) return false;
        await consumeAllEmailTokens(tx, token.userId, 'password_reset');
        // Every access and refresh token names a session: ending them all signs every
        // device out, the one that may have been stolen included.
        await revokeUserSessions(tx, token.userId, null, 'password-changed');
        await clearLoginFailures(tx, user.email);
        return true;
      });
    },

    async verifyEmail(tokenHash) {
      try {
        return await db.transaction(async (tx) => {
          const token = await consumeEmailToken(tx, tokenHash, 'email_verification');
          if (!token) return 'invalid-token' as const;
          // The token stays unused: it is still good if the account takes that address back.
          if (!(await markEmailVerified(tx, token.userId, token.address))) {
            throw new AddressChanged();
          }
          return 'verified' as const;
        });
      } catch (error) {
        if (error instanceof AddressChanged) return 'address-changed';
        throw error;
      }
    },
  };
}
