import { TooManyAttemptsError } from '../../errors.js';
import type { LoginFailuresRepository } from './login-failures-repository.js';

/**
 * The per-account login limit: at most `maxFailures` failed logins per email address in a
 * window of `windowSeconds`, whatever the client's address. The per-IP limits (app.ts)
 * cannot stop a guesser who spreads attempts over many addresses; this does.
 *
 * - Each attempt is counted BEFORE its password is checked (an atomic upsert in the
 *   database, shared by every instance), and a login that gets the password right clears
 *   the count. So the count is "failures plus attempts in flight": however many attempts
 *   arrive at once, no more than `maxFailures` of them are ever checked in a window.
 *   Counting after the check would let a burst of concurrent guesses all pass the "is it
 *   locked?" read before any of them had been recorded.
 * - A fixed window, not a sliding one or an exponential lock-out: one row per address
 *   and one statement per attempt, and a lock that ends at a time known in advance (the
 *   `Retry-After`). The price is that a guesser may spend up to twice the allowance around
 *   a window's end; at 10 per 15 minutes that is still too few to guess a password.
 * - Unknown addresses are counted exactly like known ones: otherwise a 429 would tell
 *   which addresses have accounts. The refusal looks the same for both, too.
 * - A locked address's logins are refused without running bcrypt, right password or not:
 *   past the limit every guess would cost the server a hash for nothing, and answering
 *   "right password" differently would turn the lock into an oracle.
 * - Anyone can lock an address for one window by failing ten logins with it; the per-IP
 *   limits bound how many addresses one client can lock, and the lock ends with its window.
 *   And a client that sends more than `maxFailures` logins for one address at the same
 *   moment gets 429 for the excess, right password or not: people never do.
 */
export interface LoginLimits {
  /**
   * Counts a login attempt as `email`, to be called before its password is checked:
   * null when it may go on, or the error to answer with when the address is locked.
   */
  admit(email: string): Promise<TooManyAttemptsError | null>;
  /** The password was right: the address's count starts again. */
  succeeded(email: string): Promise<void>;
  /**
   * Deletes the counters of windows that are over (a scheduled job calls it); says how
   * many. Expired counters are harmless (the next attempt starts a new window), but an
   * address tried once stays a row otherwise.
   */
  deleteExpired(): Promise<number>;
}

export function createLoginLimits(deps: {
  failures: LoginFailuresRepository;
  maxFailures: number;
}): LoginLimits {
  const { failures, maxFailures } = deps;
  return {
    async admit(email) {
      const { attempts, secondsLeft } = await failures.count(email);
      return attempts > maxFailures ? new TooManyAttemptsError(secondsLeft) : null;
    },

    async succeeded(email) {
      await failures.clear(email);
    },

    deleteExpired: () => failures.deleteExpired(),
  };
}
