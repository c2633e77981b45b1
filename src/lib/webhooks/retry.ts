const second = 1_000;
const minute = 60 * second;
const hour = 60 * minute;

/**
 * The delay before each attempt of a webhook, in milliseconds: entry n is the wait before
 * attempt n + 1 (the first goes at once). Svix's schedule: eight attempts over about 27 h,
 * so an endpoint that is down for a night still gets its events, and one that is gone
 * stops costing us after a day.
 */
export const webhookRetrySchedule: readonly number[] = Object.freeze([
  0,
  5 * second,
  5 * minute,
  30 * minute,
  2 * hour,
  5 * hour,
  10 * hour,
  10 * hour,
]);

/** Each delay is moved by up to this share either way, so failed endpoints do not retry in step. */
export const retryJitter = 0.2;

/**
 * How long to wait before the next attempt once `attemptsMade` attempts have been made,
 * or null when the schedule is spent and the delivery has failed. `random` answers in
 * [0, 1) as Math.random does; the delay is the scheduled one times [0.8, 1.2).
 */
export function retryDelayMs(
  attemptsMade: number,
  random: () => number = Math.random,
  schedule: readonly number[] = webhookRetrySchedule,
): number | null {
  if (!Number.isInteger(attemptsMade) || attemptsMade < 0) {
    throw new RangeError(`attemptsMade must be a whole number ≥ 0, not ${attemptsMade}`);
  }
  const scheduled = schedule[attemptsMade];
  if (scheduled === undefined) return null;
  return Math.round(scheduled * (1 - retryJitter + 2 * retryJitter * random()));
}
