import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { loginFailures } from '../../db/schema/auth.js';
import { users } from '../../db/schema/users.js';
import { revokeUserSessions } from '../../db/sessions.js';
import { consumeAllEmailTokens, consumeEmailToken, isLiveEmailToken } from '../email/tokens.js';

/** An account as these flows need it. */
export interface AccountRecord {
  id: string;
  email: string;
  emailVerified: boolean;
}

/** Work done in the transaction that holds the account's row locked. */
export type WithAccount<T> = (tx: Db, account: AccountRecord | null) => Promise<T>;

/**
 * The password reset and email verification flows: each function is one transaction, so
 * that a token is used up together with the change it allows, or not at all.
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

const accountColumns = { id: users.id, email: users.email, emailVerified: users.emailVerified };

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
        const [account] = await tx
          .select(accountColumns)
          .from(users)
          .where(
            and(eq(sql`lower(${users.email})`, sql`lower(${email})`), eq(users.isActive, true)),
          )
          .limit(1)
          .for('update');
        return work(tx, account ?? null);
      });
    },

    async withAccountById(id, work) {
      return db.transaction(async (tx) => {
        const [account] = await tx
          .select(accountColumns)
          .from(users)
          .where(eq(users.id, id))
          .limit(1)
          .for('update');
        return work(tx, account ?? null);
      });
    },

    isLiveResetToken: (tokenHash) => isLiveEmailToken(db, tokenHash, 'password_reset'),

    async resetPassword(tokenHash, passwordHash) {
      return db.transaction(async (tx) => {
        const token = await consumeEmailToken(tx, tokenHash, 'password_reset');
        if (!token) return false;
        const [user] = await tx
          .update(users)
          .set({ passwordHash, updatedAt: sql`now()` })
          .where(eq(users.id, token.userId))
          .returning({ email: users.email });
        if (!user) return false;
        await consumeAllEmailTokens(tx, token.userId, 'password_reset');
        // Every access and refresh token names a session: ending them all signs every
        // device out, the one that may have been stolen included.
        await revokeUserSessions(tx, token.userId);
        await tx.delete(loginFailures).where(eq(loginFailures.emailKey, sql`lower(${user.email})`));
        return true;
      });
    },

    async verifyEmail(tokenHash) {
      try {
        return await db.transaction(async (tx) => {
          const token = await consumeEmailToken(tx, tokenHash, 'email_verification');
          if (!token) return 'invalid-token' as const;
          const [user] = await tx
            .update(users)
            .set({ emailVerified: true, updatedAt: sql`now()` })
            .where(
              and(
                eq(users.id, token.userId),
                eq(sql`lower(${users.email})`, sql`lower(${token.address})`),
              ),
            )
            .returning({ id: users.id });
          // The token stays unused: it is still good if the account takes that address back.
          if (!user) throw new AddressChanged();
          return 'verified' as const;
        });
      } catch (error) {
        if (error instanceof AddressChanged) return 'address-changed';
        throw error;
      }
    },
  };
}
