/**
 * Requests per key in fixed windows, in this process's memory (the plugin's in-memory
 * store counts the same way). It holds `capacity` keys at most: past that, the key whose
 * window started first is forgotten (its client starts a new window), so a flood of
 * addresses costs a bounded amount of memory.
 */
export class WindowCounts {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();

  constructor(
    private readonly windowMs: number,
    private readonly capacity: number,
  ) {}

  /** Counts one request of `key` at `now` (ms); its window as it now is. */
  hit(key: string, now: number): { count: number; resetAt: number } {
    let window = this.windows.get(key);
    if (window === undefined || window.resetAt <= now) {
      // A new window goes last: the map stays ordered by the start of its windows.
      if (window !== undefined) this.windows.delete(key);
      else if (this.windows.size >= this.capacity) {
        const oldest = this.windows.keys().next();
        if (!oldest.done) this.windows.delete(oldest.value);
      }
      window = { count: 0, resetAt: now + this.windowMs };
      this.windows.set(key, window);
    }
    window.count += 1;
    return window;
  }

  get size(): number {
    return this.windows.size;
  }
}
