import { ConfigError } from '../../config/index.js';
import type { PasswordHasher } from '../../lib/passwords.js';
import type { User, UsersRepository } from './repository.js';

export interface AdminAccount {
  email: string;
  password: string;
  /** Unset: made from the email address's local part, and made unique. */
  username?: string | undefined;
}

export interface AdminAccountResult {
  /** created: a new admin account; promoted: an account made admin; unchanged: an admin already. */
  action: 'created' | 'promoted' | 'unchanged';
  user: User;
}

const USERNAME_MAX = 50;

/**
 * A valid username (3 to 50 of `A-Z a-z 0-9 _ . -`, as the spec's Username) from the local
 * part of an email address: `ada.lovelace+admin@…` becomes `ada.lovelace_admin`.
 */
export function usernameFromEmail(email: string): string {
  const local = email.slice(0, Math.max(0, email.lastIndexOf('@')));
  const cleaned = local
    .replace(/[^A-Za-z0-9_.-]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, USERNAME_MAX);
  if (cleaned.length >= 3) return cleaned;
  return cleaned ? `${cleaned}_admin` : 'admin';
}

/** `base`, then `base2`, `base3`, … cut so that each stays within the length limit. */
function* usernameCandidates(base: string): Generator<string> {
  yield base;
  for (let n = 2; n <= 50; n += 1) {
    const suffix = String(n);
    yield `${base.slice(0, USERNAME_MAX - suffix.length)}${suffix}`;
  }
}

/**
 * The refusal to promote an account that ADMIN_EMAIL did not create and whose address
 * nobody has proved to own: whoever signed up first with that address would become admin.
 */
function unverifiedAccountError(user: User): ConfigError {
  return new ConfigError(
    `ADMIN_EMAIL: an account with the address ${user.email} exists (username "${user.username}", id ${user.id}), was not created by ADMIN_EMAIL, and its email address is not verified, so it is not made an admin: anyone can sign up with any address. Verify the address first (the account's verification link; POST /api/auth/email/resend sends a new one), or delete that account, or set ADMIN_EMAIL to another address.`,
  );
}

/**
 * Makes sure the account with this email address exists and is an admin: creates it as
 * one, or promotes an existing account, but only one whose address is verified (else it
 * throws a ConfigError saying what to do, and the server does not start). An existing
 * account keeps its password, its username and whether it is active. Running it again
 * changes nothing; two servers running it at once settle on one account (the email
 * address's unique index decides).
 */
export async function ensureAdminAccount(
  deps: { users: UsersRepository; passwords: PasswordHasher },
  account: AdminAccount,
): Promise<AdminAccountResult> {
  const { users, passwords } = deps;
  let passwordHash: string | undefined;
  // Another process may create or delete the account between two steps: look again.
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const existing = await users.findByEmail(account.email);
    if (existing) {
      if (existing.role === 'admin') return { action: 'unchanged', user: existing };
      if (!existing.emailVerified) throw unverifiedAccountError(existing);
      // Only if it still has the address, verified: not if it changed meanwhile.
      const promoted = await users.promoteVerifiedToAdmin(existing.id, account.email);
      if (promoted) return { action: 'promoted', user: promoted };
      continue;
    }

    passwordHash ??= await passwords.hash(account.password);
    const candidates = account.username
      ? [account.username]
      : usernameCandidates(usernameFromEmail(account.email));
    for (const username of candidates) {
      const created = await users.create({
        email: account.email,
        username,
        passwordHash,
        role: 'admin',
      });
      if (created.ok) return { action: 'created', user: created.value };
      if (created.error.field === 'email') break;
      if (created.error.field !== 'username') throw created.error;
      if (account.username) {
        throw new ConfigError(
          `Invalid environment: ADMIN_USERNAME "${account.username}" is taken by another account; choose another, or leave it unset.`,
        );
      }
    }
  }
  throw new Error(`Could not make sure of the admin account ${account.email}.`);
}
