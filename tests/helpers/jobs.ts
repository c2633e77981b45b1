import type { JobBackendSettings } from '../../src/jobs/backend.js';
import type { TestDatabase } from './database.js';
import { SHARED_REDIS_URL, deleteKeys, uniquePrefix } from './redis.js';

/**
 * The two places jobs can be kept, for suites that run on both: the shared Redis under a
 * key prefix of the test's own, or the test's database (BullMQ's tables in their schema).
 */
export const jobBackends = ['redis', 'postgres'] as const;
export type JobBackendKind = (typeof jobBackends)[number];

export interface TestJobBackend {
  settings: JobBackendSettings;
  /** Removes what the test left (Redis keys; the database is dropped with the test's). */
  cleanup(): Promise<void>;
}

export function testJobBackend(kind: JobBackendKind, db: TestDatabase): TestJobBackend {
  if (kind === 'redis') {
    const keyPrefix = uniquePrefix();
    return {
      settings: { kind: 'redis', url: SHARED_REDIS_URL, keyPrefix },
      cleanup: () => deleteKeys(SHARED_REDIS_URL, keyPrefix),
    };
  }
  return {
    settings: { kind: 'postgres', connection: { connectionString: db.url } },
    cleanup: async () => undefined,
  };
}

/** A promise with its resolve outside, for waiting on a handler's signal. */
export function signal<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
