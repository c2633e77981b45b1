import { describe, expect, it } from 'vitest';
import { WindowCounts } from '../../src/plugins/window-counts.js';

describe('the global limit’s in-memory counts', () => {
  it('count the requests of a key within its window, and start again after it', () => {
    const counts = new WindowCounts(60_000, 10);
    expect(counts.hit('a', 1_000)).toEqual({ count: 1, resetAt: 61_000 });
    expect(counts.hit('a', 30_000)).toEqual({ count: 2, resetAt: 61_000 });
    expect(counts.hit('b', 30_000)).toEqual({ count: 1, resetAt: 90_000 });
    expect(counts.hit('a', 60_999).count).toBe(3);
    // The window ends at resetAt: the next request opens a new one.
    expect(counts.hit('a', 61_000)).toEqual({ count: 1, resetAt: 121_000 });
    expect(counts.hit('b', 61_000)).toEqual({ count: 2, resetAt: 90_000 });
  });

  it('hold no more keys than their capacity, forgetting the window that started first', () => {
    const counts = new WindowCounts(60_000, 3);
    counts.hit('a', 0);
    counts.hit('b', 1);
    counts.hit('c', 2);
    counts.hit('a', 3);
    counts.hit('d', 4);
    expect(counts.size).toBe(3);
    // a's window started first (its second request does not move it): a was forgotten.
    expect(counts.hit('b', 5).count).toBe(2);
    expect(counts.hit('a', 6).count).toBe(1);
    // Coming back, it took the place of the next oldest window, b's (c's is newer).
    expect(counts.size).toBe(3);
    expect(counts.hit('c', 7).count).toBe(2);
    expect(counts.hit('b', 8).count).toBe(1);
  });

  it('renew an ended window as the newest, so it is not the next to be forgotten', () => {
    const counts = new WindowCounts(10, 2);
    counts.hit('a', 0);
    counts.hit('b', 5);
    // a's window ended at 10: it starts again at 12 and is now newer than b's.
    counts.hit('a', 12);
    counts.hit('c', 13);
    expect(counts.hit('a', 14).count).toBe(2);
    expect(counts.hit('b', 14).count).toBe(1);
  });
});
