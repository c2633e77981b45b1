import { describe, expect, it } from 'vitest';
import { retryDelayMs, retryJitter, webhookRetrySchedule } from '../../src/lib/webhooks/retry.js';

const hour = 3_600_000;

describe('retryDelayMs', () => {
  it('follows the schedule: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h', () => {
    const middle = () => 0.5;
    const delays = webhookRetrySchedule.map((_, attemptsMade) =>
      retryDelayMs(attemptsMade, middle),
    );
    expect(delays).toEqual([
      0,
      5_000,
      300_000,
      1_800_000,
      2 * hour,
      5 * hour,
      10 * hour,
      10 * hour,
    ]);
  });

  it('gives up (null) once every scheduled attempt was made, about 27 hours in', () => {
    const attempts = webhookRetrySchedule.length;
    expect(retryDelayMs(attempts - 1, () => 0.5)).not.toBeNull();
    expect(retryDelayMs(attempts, () => 0.5)).toBeNull();
    expect(retryDelayMs(attempts + 10, () => 0.5)).toBeNull();
    const total = webhookRetrySchedule.reduce((sum, delay) => sum + delay, 0);
    expect(total).toBeGreaterThan(27 * hour);
    expect(total).toBeLessThan(28 * hour);
  });

  it('moves each delay by at most 20 % either way, and uses the whole band', () => {
    expect(retryJitter).toBe(0.2);
    // The first attempt (scheduled at 0) has nothing to move.
    expect(retryDelayMs(0, () => 0.999_999)).toBe(0);
    for (const [attemptsMade, scheduled] of [...webhookRetrySchedule.entries()].slice(1)) {
      const low = retryDelayMs(attemptsMade, () => 0);
      const high = retryDelayMs(attemptsMade, () => 0.999_999);
      expect(low).toBe(Math.round(scheduled * 0.8));
      expect(high).toBeLessThanOrEqual(Math.round(scheduled * 1.2));
      expect(high).toBeGreaterThan(Math.round(scheduled * 1.19));
    }
  });

  it('spreads the delays of many deliveries with Math.random', () => {
    const delays = Array.from({ length: 200 }, () => retryDelayMs(4) ?? Number.NaN);
    for (const delay of delays) {
      expect(delay).toBeGreaterThanOrEqual(0.8 * 2 * hour);
      expect(delay).toBeLessThanOrEqual(1.2 * 2 * hour);
    }
    expect(new Set(delays).size).toBeGreaterThan(100);
  });

  it('takes a shorter schedule (tests, configuration)', () => {
    const schedule = [0, 100, 200];
    expect(retryDelayMs(1, () => 0.5, schedule)).toBe(100);
    expect(retryDelayMs(2, () => 0, schedule)).toBe(160);
    expect(retryDelayMs(3, () => 0.5, schedule)).toBeNull();
  });

  it('refuses a count of attempts that is not a whole number', () => {
    expect(() => retryDelayMs(-1)).toThrow(RangeError);
    expect(() => retryDelayMs(1.5)).toThrow(RangeError);
  });
});
