import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { assertCoverage, operationsOf, type OpenApiDocument } from '../../src/http/contract.js';
import { loadSpec } from '../../src/spec.js';
import { TEST_JWT_SECRET } from '../helpers/app.js';
import { createTestDatabase } from '../helpers/database.js';

const spec = loadSpec();
const handlerNames = Object.fromEntries(operationsOf(spec).map((op) => [op.operationId, () => {}]));

function withExtraOperation(document: OpenApiDocument): OpenApiDocument {
  const copy = structuredClone(document);
  copy.paths['/api/extras'] = {
    get: {
      operationId: 'listExtras',
      responses: { '200': { description: 'ok' } },
    },
  };
  return copy;
}

describe('every operation has a handler and every handler an operation', () => {
  it('accepts the handlers the app is built with', async () => {
    const db = await createTestDatabase();
    try {
      const config = loadConfig({
        NODE_ENV: 'test',
        LOG_LEVEL: 'silent',
        JWT_SECRET: TEST_JWT_SECRET,
        ...(db.url ? { DATABASE_URL: db.url } : {}),
      });
      const app = await buildApp(config, db.url ? {} : { database: db.database });
      await app.ready();
      // Every operation of the spec is a route of the app.
      for (const op of operationsOf(spec)) {
        const url = op.path.replace(/\{(\w+)\}/g, ':$1');
        expect(app.hasRoute({ method: op.method, url }), `${op.method} ${op.path}`).toBe(true);
      }
      await app.close();

      // An operation added to the spec without a handler stops the start-up, by name.
      await expect(
        buildApp(config, {
          ...(db.url ? {} : { database: db.database }),
          spec: withExtraOperation(spec),
        }),
      ).rejects.toThrow(/operation listExtras \(GET \/api\/extras\) has no handler/);
    } finally {
      await db.drop();
    }
  });

  it('names operations without handlers', () => {
    const { getUser: _omitted, ...rest } = handlerNames;
    expect(() => assertCoverage(spec, rest, { bearerAuth: () => {} })).toThrow(
      /operation getUser \(GET \/api\/users\/\{id\}\) has no handler/,
    );
  });

  it('names handlers without operations', () => {
    expect(() =>
      assertCoverage(spec, { ...handlerNames, publishPost: () => {} }, { bearerAuth: () => {} }),
    ).toThrow(/handler publishPost matches no operation/);
  });

  it('names security schemes without handlers, and handlers without schemes', () => {
    expect(() => assertCoverage(spec, handlerNames, {})).toThrow(
      /security scheme bearerAuth has no security handler/,
    );
    expect(() =>
      assertCoverage(spec, handlerNames, { bearerAuth: () => {}, apiKey: () => {} }),
    ).toThrow(/security handler apiKey matches no security scheme/);
  });

  it('accepts the spec as it is', () => {
    expect(() => assertCoverage(spec, handlerNames, { bearerAuth: () => {} })).not.toThrow();
  });
});
