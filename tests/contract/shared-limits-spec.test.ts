import { describe, expect, it } from 'vitest';
import { operationsOf } from '../../src/http/contract.js';
import { OPERATIONAL_OPERATIONS } from '../../src/plugins/api-operations.js';
import { loadSpec } from '../../src/spec.js';

/**
 * What the global rate limit and load shedding can answer is declared where they apply:
 * a 429 with Retry-After and X-RateLimit-* and a 503 that may carry Retry-After on every
 * API operation; neither on the probes and the documentation, which they never touch.
 */
type Response = { $ref?: string; headers?: Record<string, unknown> };
type Spec = {
  paths: Record<string, Record<string, { responses: Record<string, Response> }>>;
  components: { responses: Record<string, Response> };
};
const spec = loadSpec() as unknown as Spec;
const resolved = (response: Response | undefined): Response | undefined =>
  response?.$ref
    ? spec.components.responses[response.$ref.replace('#/components/responses/', '')]
    : response;

describe('the spec declares the global limit and load shedding', () => {
  const operations = operationsOf(loadSpec());

  it.each(operations.filter((op) => !OPERATIONAL_OPERATIONS.has(op.operationId)))(
    '$operationId: 429 with Retry-After and X-RateLimit-*, 503 with Retry-After',
    ({ method, path }) => {
      const { responses } = spec.paths[path]![method.toLowerCase()]!;
      const tooMany = resolved(responses['429']);
      expect(Object.keys(tooMany?.headers ?? {})).toEqual(
        expect.arrayContaining([
          'Retry-After',
          'X-RateLimit-Limit',
          'X-RateLimit-Remaining',
          'X-RateLimit-Reset',
        ]),
      );
      expect(Object.keys(resolved(responses['503'])?.headers ?? {})).toContain('Retry-After');
    },
  );

  it('lists only operations of the spec as operational, and none of them can answer 429', () => {
    const ids = new Set(operations.map((op) => op.operationId));
    for (const id of OPERATIONAL_OPERATIONS) expect(ids.has(id), id).toBe(true);
    for (const op of operations.filter((o) => OPERATIONAL_OPERATIONS.has(o.operationId))) {
      expect(spec.paths[op.path]![op.method.toLowerCase()]!.responses['429']).toBeUndefined();
    }
  });
});
