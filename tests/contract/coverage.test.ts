import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config/index.js';
import { operationsOf, type OpenApiDocument } from '../../src/http/contract.js';
import { loadSpec } from '../../src/spec.js';
import { TEST_JWT_SECRET } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

/**
 * The app's real handler map against the spec: every operation has a handler and every
 * handler an operation, or the app does not start. Each case changes the spec the app is
 * built with, so the handlers under test are the ones the server runs.
 */

type Operation = { operationId: string; security?: Array<Record<string, string[]>> };
type Spec = OpenApiDocument & {
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, unknown> };
};

const spec = loadSpec() as Spec;
let db: TestDatabase;
let config: Config;

beforeAll(async () => {
  db = await createTestDatabase();
  config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    JWT_SECRET: TEST_JWT_SECRET,
    DATABASE_URL: db.url,
  });
});
afterAll(async () => {
  await db.drop();
});

const build = (document: OpenApiDocument) => buildApp(config, { spec: document });

function changed(change: (copy: Spec) => void): Spec {
  const copy = structuredClone(spec);
  change(copy);
  return copy;
}

describe('every operation has a handler and every handler an operation', () => {
  it('registers every operation of the spec as a route', async () => {
    const app = await build(spec);
    await app.ready();
    for (const op of operationsOf(spec)) {
      const url = op.path.replace(/\{(\w+)\}/g, ':$1');
      expect(app.hasRoute({ method: op.method, url }), `${op.method} ${op.path}`).toBe(true);
    }
    await app.close();
  });

  it('refuses to start when an operation has no handler, naming it', async () => {
    const withExtra = changed((copy) => {
      copy.paths['/api/extras'] = {
        get: { operationId: 'listExtras', responses: { '200': { description: 'ok' } } } as never,
      };
    });
    await expect(build(withExtra)).rejects.toThrow(
      /operation listExtras \(GET \/api\/extras\) has no handler/,
    );
  });

  it('refuses to start when a handler has no operation (the spec lost getUser)', async () => {
    const withoutGetUser = changed((copy) => {
      delete copy.paths['/api/users/{id}']!.get;
    });
    await expect(build(withoutGetUser)).rejects.toThrow(
      /handler getUser matches no operation in the spec/,
    );
  });

  it('names both sides of a renamed operation', async () => {
    const renamed = changed((copy) => {
      copy.paths['/api/users/{id}']!.get!.operationId = 'fetchUser';
    });
    const failure = build(renamed);
    await expect(failure).rejects.toThrow(/operation fetchUser \(GET \/api\/users\/\{id\}\)/);
    await expect(failure).rejects.toThrow(/handler getUser matches no operation/);
  });

  it('refuses a security scheme without a security handler, and the other way round', async () => {
    const renamedScheme = changed((copy) => {
      copy.components.securitySchemes.tokenAuth = copy.components.securitySchemes.bearerAuth;
      delete copy.components.securitySchemes.bearerAuth;
      for (const item of Object.values(copy.paths)) {
        for (const operation of Object.values(item)) {
          if (operation.security?.length) operation.security = [{ tokenAuth: [] }];
        }
      }
    });
    const failure = build(renamedScheme);
    await expect(failure).rejects.toThrow(/security scheme tokenAuth has no security handler/);
    await expect(failure).rejects.toThrow(/security handler bearerAuth matches no security scheme/);
  });
});

describe('every route of the server is an operation of the spec or excluded by it', () => {
  it('starts with the docs routes that x-excluded-routes names', async () => {
    const app = await build(spec);
    await app.ready();
    for (const url of ['/', '/docs', '/docs/json', '/docs/static/swagger-initializer.js']) {
      expect(app.hasRoute({ method: 'GET', url }), url).toBe(true);
    }
    await app.close();
  });

  it('refuses to start when a route is in neither, naming it', async () => {
    const withoutDocs = changed((copy) => {
      copy['x-excluded-routes'] = ['/'];
    });
    await expect(build(withoutDocs)).rejects.toThrow(
      /the route GET \/docs is neither an operation of the spec nor in its x-excluded-routes/,
    );
    const withoutIndex = changed((copy) => {
      copy['x-excluded-routes'] = ['/docs', '/docs/*'];
    });
    await expect(build(withoutIndex)).rejects.toThrow(/the route GET \/ is neither/);
  });

  it('does not take an excluded prefix for more than the routes below it', async () => {
    const prefixOnly = changed((copy) => {
      copy['x-excluded-routes'] = ['/', '/doc/*', '/docs/*'];
    });
    await expect(build(prefixOnly)).rejects.toThrow(/the route GET \/docs is neither/);
  });
});
