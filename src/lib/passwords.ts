import bcrypt from 'bcryptjs';
import { InvalidInputError } from '../errors.js';

/** bcrypt reads at most 72 bytes; a longer password would be silently cut. */
export const MAX_PASSWORD_BYTES = 72;

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, hash: string): Promise<boolean>;
  /** Spends the time of one verify, for logins of unknown accounts (no timing oracle). */
  verifyNothing(password: string): Promise<void>;
}

/** Null when bcrypt can take the password whole; else the error naming the field. */
export function passwordTooLong(password: string, field = 'password'): InvalidInputError | null {
  return Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES
    ? new InvalidInputError(
        field,
        `must be at most ${MAX_PASSWORD_BYTES} bytes in UTF-8`,
        'The password is too long.',
      )
    : null;
}

export function createPasswordHasher(cost: number): PasswordHasher {
  // A compare costs what the hash's cost factor says, whatever its salt and digest, so a
  // well-formed hash of this cost serves; hashing one at start-up took 0.1 to 0.3 s.
  const dummyHash = `$2b$${String(cost).padStart(2, '0')}$${'.'.repeat(53)}`;
  return {
    hash: (password) => bcrypt.hash(password, cost),
    verify: async (password, hash) => {
      // bcrypt ignores every byte after the 72nd, so a longer password would match the one
      // stored under its first 72 bytes. It is never an account's password (sign-up refuses
      // it); it is still compared, so that refusing it takes as long as any wrong password.
      const fits = Buffer.byteLength(password, 'utf8') <= MAX_PASSWORD_BYTES;
      const matches = await bcrypt.compare(password, hash);
      return fits && matches;
    },
    verifyNothing: async (password) => {
      await bcrypt.compare(password, dummyHash);
    },
  };
}
