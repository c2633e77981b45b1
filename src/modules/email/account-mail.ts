import type { Db } from '../../db/client.js';
import { newOpaqueToken } from '../../lib/opaque-tokens.js';
import { passwordResetEmail, verificationEmail } from './templates.js';
import { insertTokenAndEmail } from './tokens.js';

/** Who an email goes to: an account and its current address. */
export interface Recipient {
  id: string;
  email: string;
}

/** How often one address may be sent a reset link, or a verification link on request. */
export const RESEND_INTERVAL_SECONDS = 60;

/**
 * The emails about an account, each with a single-use link. Every function writes in the
 * transaction it is given (`tx`), so an email exists if and only if its cause committed;
 * the `email-delivery` job sends it afterwards. Links are built from PUBLIC_URL only, never from
 * a request.
 */
export interface AccountMail {
  /**
   * A link to confirm the account's current address. `throttle`: send nothing if one went
   * to this address in the last minute. Says whether an email was queued.
   */
  sendVerification(tx: Db, recipient: Recipient, options?: { throttle: boolean }): Promise<boolean>;
  /**
   * A password reset link, at most one per address a minute. `recipient` null: nobody has
   * the address, and the same statement runs anyway, inserting nothing, so that asking for
   * an unknown address costs the database what asking for a known one does.
   */
  sendPasswordReset(tx: Db, recipient: Recipient | null, address: string): Promise<boolean>;
  /**
   * Asks for a delivery run now, after the transaction committed: mail is waiting. Never
   * throws; if the run cannot be asked for, the scheduled runs send the mail later.
   */
  nudge(): void;
}

export interface AccountMailOptions {
  publicUrl: string;
  passwordResetTtlSeconds: number;
  verificationTtlSeconds: number;
  nudge?: () => void;
}

export function createAccountMail(options: AccountMailOptions): AccountMail {
  const { publicUrl, passwordResetTtlSeconds, verificationTtlSeconds } = options;
  return {
    async sendVerification(tx, recipient, { throttle } = { throttle: false }) {
      const { token, hash: tokenHash } = newOpaqueToken();
      return insertTokenAndEmail(tx, {
        userId: recipient.id,
        purpose: 'email_verification',
        tokenHash,
        address: recipient.email,
        ttlSeconds: verificationTtlSeconds,
        throttleSeconds: throttle ? RESEND_INTERVAL_SECONDS : 0,
        message: verificationEmail(
          `${publicUrl}/verify-email?token=${token}`,
          verificationTtlSeconds,
        ),
      });
    },

    async sendPasswordReset(tx, recipient, address) {
      const { token, hash: tokenHash } = newOpaqueToken();
      return insertTokenAndEmail(tx, {
        userId: recipient?.id ?? null,
        purpose: 'password_reset',
        tokenHash,
        address: recipient?.email ?? address,
        ttlSeconds: passwordResetTtlSeconds,
        throttleSeconds: RESEND_INTERVAL_SECONDS,
        message: passwordResetEmail(
          `${publicUrl}/reset-password?token=${token}`,
          passwordResetTtlSeconds,
        ),
      });
    },

    nudge() {
      options.nudge?.();
    },
  };
}
