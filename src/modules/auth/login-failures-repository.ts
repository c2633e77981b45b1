import { eq, lt, sql, type Placeholder } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { loginFailures } from '../../db/schema/auth.js';

/** Where an email address stands in its current window, once an attempt is counted. */
export interface AttemptCount {
  /** Attempts counted in the window, this one included. */
  attempts: number;
  /** Seconds until the window ends (at least 1). */
  secondsLeft: number;
}

/**
 * The owner of `login_failures` (src/db/owners.ts), the only code that sees its rows: one
 * counter per email address (lower case), in a fixed window whose length is given at
 * creation; a password reset clears one through `clearLoginFailures`. The database's clock is the
 * only one used, so instances with drifting clocks still agree.
 */
export interface LoginFailuresRepository {
  /**
   * Counts one attempt for `email`, in one atomic statement: a new window (count 1) when
   * there is none or the last one is over, one more in the current one otherwise.
   */
  count(email: string): Promise<AttemptCount>;
  /** Forgets the address's count (a login that got the password right). */
  clear(email: string): Promise<void>;
  /** Deletes the counters whose window is over; answers how many. */
  deleteExpired(): Promise<number>;
}

// An address's key. left(): the column holds 254 characters, and lower() may lengthen some
// letters.
const keyOf = (email: Placeholder | string) => sql`left(lower(${email}), 254)`;

/** Forgets the address's count, in the caller's transaction (a password reset). */
export async function clearLoginFailures(tx: Db, email: string): Promise<void> {
  await tx.delete(loginFailures).where(eq(loginFailures.emailKey, keyOf(email)));
}

export function createLoginFailuresRepository(
  db: Db,
  options: { windowSeconds: number },
): LoginFailuresRepository {
  const { windowSeconds } = options;
  const key = keyOf(sql.placeholder('email'));
  const windowEnd = sql`${loginFailures.windowStartedAt} + make_interval(secs => ${windowSeconds}::double precision)`;
  // In ON CONFLICT DO UPDATE the table's name stands for the existing row; PostgreSQL locks
  // that row and evaluates the SET on its latest version, so concurrent attempts queue up
  // and none is lost.
  const over = sql`${windowEnd} <= now()`;
  const countAttempt = db
    .insert(loginFailures)
    .values({ emailKey: key, failures: 1, windowStartedAt: sql`now()` })
    .onConflictDoUpdate({
      target: loginFailures.emailKey,
      set: {
        failures: sql`case when ${over} then 1 else ${loginFailures.failures} + 1 end`,
        windowStartedAt: sql`case when ${over} then now() else ${loginFailures.windowStartedAt} end`,
      },
    })
    .returning({
      attempts: loginFailures.failures,
      secondsLeft: sql<number>`greatest(1, ceil(extract(epoch from ${windowEnd} - now())))::int`,
    })
    .prepare('login_failures_count');
  const clearKey = db
    .delete(loginFailures)
    .where(eq(loginFailures.emailKey, key))
    .prepare('login_failures_clear');

  return {
    async count(email) {
      const [row] = await countAttempt.execute({ email });
      return { attempts: row!.attempts, secondsLeft: Number(row!.secondsLeft) };
    },

    async clear(email) {
      await clearKey.execute({ email });
    },

    async deleteExpired() {
      const rows = await db
        .delete(loginFailures)
        .where(
          lt(
            loginFailures.windowStartedAt,
            sql`now() - make_interval(secs => ${windowSeconds}::double precision)`,
          ),
        )
        .returning({ emailKey: loginFailures.emailKey });
      return rows.length;
    },
  };
}
