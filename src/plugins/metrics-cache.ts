import { Counter, type Registry } from 'prom-client';
import type { CacheMetricsRecorder } from '../lib/response-cache.js';

/**
 * The response cache's metrics: lookups by operation and result (hit, miss: read from the
 * database and kept, bypass: read from the database because the cache could not be used),
 * answers kept, answers dropped by changes, and Redis failures.
 */
export function registerCacheMetrics(registry: Registry): CacheMetricsRecorder {
  const lookups = new Counter({
    name: 'cache_lookups_total',
    help: 'Lookups of the response cache, by operation and result: hit, miss (read and kept), bypass (read without the cache: Redis down, slow or catching up).',
    labelNames: ['operation', 'result'] as const,
    registers: [registry],
  });
  const fills = new Counter({
    name: 'cache_fills_total',
    help: 'Answers kept in the response cache, by operation.',
    labelNames: ['operation'] as const,
    registers: [registry],
  });
  const invalidations = new Counter({
    name: 'cache_invalidations_total',
    help: "Changes that dropped an operation's cached answers (one per tag renewed), by operation.",
    labelNames: ['operation'] as const,
    registers: [registry],
  });
  const errors = new Counter({
    name: 'cache_errors_total',
    help: 'Redis commands of the response cache that failed or timed out.',
    registers: [registry],
  });
  return {
    cacheLookup: (operation, result) => lookups.labels(operation, result).inc(),
    cacheFill: (operation) => fills.labels(operation).inc(),
    cacheInvalidation: (operation) => invalidations.labels(operation).inc(),
    cacheError: () => errors.inc(),
  };
}
