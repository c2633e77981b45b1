import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/index.js';
import { projectRoot } from '../../src/paths.js';
import {
  builtFrom,
  isKnownVariable,
  kubernetesDir,
  kubernetesManifests,
  seconds,
  specPaths,
} from './files.js';

/**
 * deploy/kubernetes, offline: each document against its kind's schema (kubernetes-models:
 * the API server's OpenAPI schemas, compiled), unknown fields refused as
 * `kubectl apply --validate=strict` refuses them (the same documents type-checked against
 * kubernetes-models' interfaces, whose object literals allow no extra property), and the
 * facts that tie the manifests to the server: ports, probes, shutdown timings, variables.
 */

type Manifest = Record<string, unknown>;

/** Each kind the manifests may use: its model (schema) and its TypeScript interface. */
const kinds = {
  'v1/ConfigMap': { model: ConfigMap, type: ['kubernetes-models/v1/ConfigMap', 'IConfigMap'] },
  'v1/Secret': { model: Secret, type: ['kubernetes-models/v1/Secret', 'ISecret'] },
  'v1/Service': { model: Service, type: ['kubernetes-models/v1/Service', 'IService'] },
  'apps/v1/Deployment': {
    model: Deployment,
    type: ['kubernetes-models/apps/v1/Deployment', 'IDeployment'],
  },
  'batch/v1/Job': { model: Job, type: ['kubernetes-models/batch/v1/Job', 'IJob'] },
  'networking.k8s.io/v1/Ingress': {
    model: Ingress,
    type: ['kubernetes-models/networking.k8s.io/v1/Ingress', 'IIngress'],
  },
  'policy/v1/PodDisruptionBudget': {
    model: PodDisruptionBudget,
    type: ['kubernetes-models/policy/v1/PodDisruptionBudget', 'IPodDisruptionBudget'],
  },
  'autoscaling/v2/HorizontalPodAutoscaler': {
    model: HorizontalPodAutoscaler,
    type: ['kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler', 'IHorizontalPodAutoscaler'],
  },
} as const;

function kindOf(document: Manifest): keyof typeof kinds {
  const key = `${String(document.apiVersion)}/${String(document.kind)}`;
  if (!(key in kinds)) throw new Error(`no schema here for ${key}`);
  return key as keyof typeof kinds;
}

/** The schema's complaints about one document (none: valid). */
function schemaErrors(document: Manifest): string[] {
  const { model: Model } = kinds[kindOf(document)];
  try {
    new Model(document).validate();
    return [];
  } catch (error) {
    return [(error as Error).message];
  }
}

/**
 * Fields no schema of its kind has (a misspelt `readinesProbe` passes the schemas, which
 * allow extra properties): the documents as object literals typed with kubernetes-models'
 * interfaces, type-checked in memory.
 */
function unknownFields(documents: readonly Manifest[]): string[] {
  const file = join(projectRoot, 'tests/deploy/manifests.generated.ts');
  const source = documents
    .map((document, index) => {
      const [module, name] = kinds[kindOf(document)].type;
      return `import type { ${name} as T${index} } from '${module}';\nexport const m${index}: T${index} = ${JSON.stringify(document, null, 2)};`;
    })
    .join('\n');
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const base = ts.createCompilerHost(options);
  host.fileExists = (name) => name === file || base.fileExists(name);
  host.readFile = (name) => (name === file ? source : base.readFile(name));
  host.getSourceFile = (name, language, ...rest) =>
    name === file
      ? ts.createSourceFile(name, source, language)
      : base.getSourceFile(name, language, ...rest);
  const program = ts.createProgram([file], options, host);
  return ts
    .getPreEmitDiagnostics(program)
    .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
}

const manifests = kubernetesManifests();
const documents = manifests.map(({ document }) => document);

function one(kind: string): Manifest {
  const found = documents.filter((document) => document.kind === kind);
  expect(found, kind).toHaveLength(1);
  return found[0] as Manifest;
}

// The shapes the cross-checks read; the schemas above vouch for the rest.
interface Container {
  name: string;
  image: string;
  command?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: {
    name: string;
    value?: string;
    valueFrom?: { secretKeyRef?: { name: string; key: string } };
  }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  startupProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  lifecycle?: { preStop?: { exec?: { command: string[] }; sleep?: { seconds: number } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown>;
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: Record<string, unknown>;
  terminationGracePeriodSeconds?: number;
}
interface Workload {
  metadata: { name: string };
  spec: {
    replicas?: number;
    selector?: { matchLabels: Record<string, string> };
    strategy?: { rollingUpdate?: { maxUnavailable?: number | string } };
    template: {
      metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
      spec: PodSpec;
    };
  };
}

/** The Deployment of one component: the API's or the worker's. */
function deploymentOf(component: string): Workload {
  const found = documents.filter(
    (document) =>
      document.kind === 'Deployment' &&
      (document as unknown as Workload).spec.template.metadata?.labels?.[
        'app.kubernetes.io/component'
      ] === component,
  );
  expect(found, component).toHaveLength(1);
  return found[0] as unknown as Workload;
}

const deployment = deploymentOf('api');
const workerDeployment = deploymentOf('worker');
const job = one('Job') as unknown as Workload;
const configMap = one('ConfigMap') as unknown as {
  metadata: { name: string };
  data: Record<string, string>;
};
const api = deployment.spec.template.spec.containers[0] as Container;

/** The environment a container gets: its ConfigMaps' data, then its own env entries. */
function environmentOf(
  container: Container,
): Map<string, string | { secret: string; key: string }> {
  const variables = new Map<string, string | { secret: string; key: string }>();
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) {
      expect(source.configMapRef.name).toBe(configMap.metadata.name);
      for (const [name, value] of Object.entries(configMap.data)) variables.set(name, value);
    }
    if (source.secretRef) throw new Error('name each secret variable with secretKeyRef');
  }
  for (const entry of container.env ?? []) {
    const ref = entry.valueFrom?.secretKeyRef;
    variables.set(entry.name, ref ? { secret: ref.name, key: ref.key } : (entry.value ?? ''));
  }
  return variables;
}
const apiEnvironment = environmentOf(api);

function setting(name: string): string {
  const value = apiEnvironment.get(name);
  if (typeof value !== 'string') throw new Error(`${name} is not set in plain text`);
  return value;
}

describe('deploy/kubernetes against the Kubernetes schemas', () => {
  it('has the Deployment, Service, Job, PodDisruptionBudget, HorizontalPodAutoscaler and ConfigMap', () => {
    const present = documents.map((document) => document.kind).sort();
    expect(present).toEqual(
      expect.arrayContaining([
        'ConfigMap',
        'Deployment',
        'HorizontalPodAutoscaler',
        'Job',
        'PodDisruptionBudget',
        'Service',
      ]),
    );
  });

  it.each(manifests.map(({ file, document }) => [`${file}: ${String(document.kind)}`, document]))(
    '%s is valid for its kind',
    (_name, document) => {
      expect(schemaErrors(document as Manifest)).toEqual([]);
    },
  );

  it('refuses a wrong type and a missing required field (the check can fail)', () => {
    const copy = structuredClone(deployment);
    (copy.spec.template.spec.containers[0] as Container).ports = [
      { containerPort: 'http' as never },
    ];
    expect(schemaErrors(copy as unknown as Manifest).join()).toMatch(
      /containerPort must be integer/,
    );

    const noSelector = structuredClone(deployment) as unknown as Manifest;
    delete (noSelector.spec as Record<string, unknown>).selector;
    expect(schemaErrors(noSelector).join()).toMatch(/selector/);

    const hpa = structuredClone(one('HorizontalPodAutoscaler')) as {
      spec: Record<string, unknown>;
    };
    hpa.spec.maxReplicas = '8';
    expect(schemaErrors(hpa as unknown as Manifest).join()).toMatch(/maxReplicas must be integer/);
  });

  it('has no field its kind does not define', () => {
    expect(unknownFields(documents)).toEqual([]);
  });

  it('finds a misspelt field, which the schemas alone let through', () => {
    const copy = structuredClone(deployment);
    const container = copy.spec.template.spec.containers[0] as Container & Record<string, unknown>;
    container.readinesProbe = container.readinessProbe;
    delete container.readinessProbe;
    expect(schemaErrors(copy as unknown as Manifest)).toEqual([]);
    expect(unknownFields([copy as unknown as Manifest]).join()).toMatch(/readinesProbe/);
  });

  it('lists every manifest but the Job and the templates (*.example.yaml) in kustomization.yaml', () => {
    const kustomization = parse(
      readFileSync(join(kubernetesDir, 'kustomization.yaml'), 'utf8'),
    ) as {
      resources: string[];
    };
    const files = [...new Set(manifests.map(({ file }) => file))].filter(
      (file) => file !== 'migrate-job.yaml' && !file.endsWith('.example.yaml'),
    );
    expect([...kustomization.resources].sort()).toEqual(files.sort());
  });
});

describe('deploy/kubernetes against the server', () => {
  it('runs `node dist/server.js` and the Job `node dist/db/migrate.js` then `node dist/db/search-language.js`, files `npm run build` makes', () => {
    expect(api.command).toEqual(['node', 'dist/server.js']);
    // An init container runs to its end before the Job's container starts.
    const [migrate, ...others] = job.spec.template.spec.initContainers ?? [];
    expect(others).toEqual([]);
    expect(migrate?.command).toEqual(['node', 'dist/db/migrate.js']);
    expect(migrate?.image).toBe(api.image);
    const language = job.spec.template.spec.containers[0] as Container;
    expect(job.spec.template.spec.containers).toHaveLength(1);
    expect(language.command).toEqual(['node', 'dist/db/search-language.js']);
    expect(language.image).toBe(api.image);
    expect({ ...language, name: 'migrate', command: migrate?.command }).toEqual(migrate);
    for (const path of ['dist/server.js', 'dist/db/migrate.js', 'dist/db/search-language.js']) {
      const built = builtFrom(path);
      expect(built.sourceExists, built.source).toBe(true);
      // After `npm run build` (CI runs it before the tests), the file itself.
      if (built.built !== null) expect(built.built, path).toBe(true);
    }
  });

  it('listens on the container port the probes and the Service use (PORT)', () => {
    const http = api.ports?.find((port) => port.name === 'http');
    expect(http?.containerPort).toBe(Number(setting('PORT')));
    for (const probe of [api.startupProbe, api.livenessProbe, api.readinessProbe]) {
      expect(probe?.httpGet?.port).toBe('http');
    }
    const service = one('Service') as {
      spec: { selector: Record<string, string>; ports: { targetPort: string }[] };
    };
    expect(service.spec.ports.map((port) => port.targetPort)).toEqual(['http']);
    expect(deployment.spec.template.metadata?.labels).toMatchObject(service.spec.selector);
  });

  it('probes liveness on /health and readiness on /ready, paths the server serves', () => {
    expect(api.livenessProbe?.httpGet?.path).toBe('/health');
    expect(api.startupProbe?.httpGet?.path).toBe('/health');
    expect(api.readinessProbe?.httpGet?.path).toBe('/ready');
    expect(specPaths()).toEqual(expect.arrayContaining(['/health', '/ready']));
  });

  it('gives SIGTERM after preStop, and the shutdown its time before the kill', () => {
    const preStop = api.lifecycle?.preStop?.exec?.command ?? [];
    expect(preStop[0]).toBe('sleep');
    const sleep = Number(preStop[1]);
    expect(sleep).toBeGreaterThanOrEqual(5);
    const shutdown = seconds(setting('SHUTDOWN_TIMEOUT'));
    const grace = deployment.spec.template.spec.terminationGracePeriodSeconds ?? 30;
    // src/server.ts: requests get SHUTDOWN_TIMEOUT, then the rest of the shutdown (the
    // database closing) as long again before the process gives up.
    expect(grace).toBeGreaterThan(sleep + shutdown);
    expect(grace).toBeGreaterThanOrEqual(sleep + 2 * shutdown);
  });

  it('rolls out without going below its replicas, and never evicts the last ready pod', () => {
    expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(deployment.spec.strategy?.rollingUpdate?.maxUnavailable).toBe(0);
    const pdb = one('PodDisruptionBudget') as {
      spec: { minAvailable?: number; selector: { matchLabels: Record<string, string> } };
    };
    expect(pdb.spec.minAvailable).toBeGreaterThanOrEqual(1);
    expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas ?? 1);
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector?.matchLabels);
    const hpa = one('HorizontalPodAutoscaler') as {
      spec: {
        scaleTargetRef: { kind: string; name: string };
        minReplicas: number;
        maxReplicas: number;
        metrics: { resource?: { name: string } }[];
      };
    };
    expect(hpa.spec.scaleTargetRef).toMatchObject({
      kind: 'Deployment',
      name: deployment.metadata.name,
    });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec.metrics.map((metric) => metric.resource?.name)).toEqual(['cpu']);
    // CPU utilisation is a share of the request: without one the HPA cannot scale.
    expect(api.resources?.requests?.cpu).toBeTruthy();
    expect(api.resources?.limits?.memory).toBeTruthy();
    // Every pod's pool at once stays within PostgreSQL's default max_connections (100).
    expect(hpa.spec.maxReplicas * Number(setting('DB_POOL_MAX')) + 5).toBeLessThanOrEqual(100);
  });

  it('runs as a non-root user on a read-only root filesystem', () => {
    for (const workload of [deployment, job]) {
      const pod = workload.spec.template.spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true });
      expect(pod.securityContext?.runAsUser).toBeGreaterThan(0);
      for (const container of pod.containers) {
        expect(container.securityContext).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
      }
    }
    // The server writes files only for the embedded database, which DATABASE_URL turns off.
    expect(apiEnvironment.get('DATABASE_URL')).toMatchObject({ key: 'DATABASE_URL' });
  });

  it('sets only variables the server reads, secrets from the Secret', () => {
    const jobEnvironment = environmentOf(job.spec.template.spec.containers[0] as Container);
    for (const name of [...apiEnvironment.keys(), ...jobEnvironment.keys()]) {
      expect(isKnownVariable(name), name).toBe(true);
    }
    for (const name of ['DATABASE_URL', 'JWT_SECRET', 'SMTP_URL']) {
      expect(apiEnvironment.get(name), name).toMatchObject({ key: name });
    }
    // NODE_ENV=production needs JWT_SECRET even to migrate (the configuration is checked whole).
    expect(jobEnvironment.get('NODE_ENV')).toBe('production');
    expect(jobEnvironment.get('JWT_SECRET')).toMatchObject({ key: 'JWT_SECRET' });
    expect(jobEnvironment.get('DATABASE_URL')).toMatchObject({ key: 'DATABASE_URL' });
    expect(setting('TRUST_PROXY')).not.toBe('true');
  });

  it('gives the pods and the Job a configuration the server accepts, the pods listening on the pod IP', () => {
    // What the Secret holds once created (secret.example.yaml's values are refused on purpose).
    const secrets: Record<string, string> = {
      DATABASE_URL: 'postgres://app:app@db:5432/app',
      JWT_SECRET: 'a-secret-from-the-secret-a-secret-from-the-secret',
      SMTP_URL: 'smtp://mail:587',
      REDIS_URL: 'redis://redis:6379',
    };
    const plain = (variables: ReturnType<typeof environmentOf>) =>
      Object.fromEntries(
        [...variables].map(([name, value]) => [
          name,
          typeof value === 'string' ? value : secrets[value.key],
        ]),
      );
    const jobEnvironment = environmentOf(job.spec.template.spec.containers[0] as Container);
    expect(() => loadConfig(plain(jobEnvironment)), 'the Job').not.toThrow();
    // The server alone would listen on 127.0.0.1, out of the Service's and the probes' reach.
    expect(setting('HOST')).toBe('0.0.0.0');
    expect(loadConfig(plain(apiEnvironment)).host).toBe('0.0.0.0');
  });

  it('declares the metrics port its Prometheus annotations name', () => {
    const annotations = deployment.spec.template.metadata?.annotations ?? {};
    const metrics = api.ports?.find((port) => port.name === 'metrics');
    expect(annotations['prometheus.io/scrape']).toBe('true');
    expect(Number(annotations['prometheus.io/port'])).toBe(metrics?.containerPort);
    expect(Number(setting('METRICS_PORT'))).toBe(metrics?.containerPort);
  });

  it('runs the jobs in the worker pods only, probed on WORKER_PORT, with the time to finish them', () => {
    const worker = workerDeployment.spec.template.spec.containers[0] as Container;
    expect(worker.command).toEqual(['node', 'dist/worker.js']);
    expect(worker.image).toBe(api.image);
    expect(setting('JOBS_IN_PROCESS')).toBe('false');
    const environment = environmentOf(worker);
    for (const name of environment.keys()) expect(isKnownVariable(name), name).toBe(true);
    // The Secret's required keys once created; the optional ones (Redis, SMTP) left out.
    const secrets: Record<string, string> = {
      DATABASE_URL: 'postgres://app:app@db:5432/app',
      JWT_SECRET: 'a-secret-from-the-secret-a-secret-from-the-secret',
    };
    const plain = Object.fromEntries(
      [...environment].map(([name, value]) => [
        name,
        typeof value === 'string' ? value : secrets[value.key],
      ]),
    );
    const config = loadConfig(plain);
    const http = worker.ports?.find((port) => port.name === 'http');
    expect(http?.containerPort).toBe(config.jobs.workerPort);
    expect(worker.livenessProbe?.httpGet).toEqual({ path: '/health', port: 'http' });
    expect(worker.readinessProbe?.httpGet).toEqual({ path: '/ready', port: 'http' });
    const annotations = workerDeployment.spec.template.metadata?.annotations ?? {};
    expect(Number(annotations['prometheus.io/port'])).toBe(config.jobs.workerPort);
    const grace = workerDeployment.spec.template.spec.terminationGracePeriodSeconds ?? 30;
    expect(grace).toBeGreaterThan((2 * config.shutdownTimeoutMs) / 1000);
  });

  it('routes the Ingress to the Service, and keeps a WebSocket open past the heartbeat', () => {
    const ingress = one('Ingress') as unknown as {
      metadata: { annotations: Record<string, string> };
      spec: {
        rules: {
          http: {
            paths: {
              path: string;
              backend: { service: { name: string; port: { name?: string } } };
            }[];
          };
        }[];
      };
    };
    const service = one('Service') as unknown as {
      metadata: { name: string };
      spec: { ports: { name: string }[] };
    };
    const paths = ingress.spec.rules.flatMap((rule) => rule.http.paths);
    expect(paths.map((path) => path.path)).toEqual(['/']);
    for (const { backend } of paths) {
      expect(backend.service.name).toBe(service.metadata.name);
      expect(service.spec.ports.map((port) => port.name)).toContain(backend.service.port.name);
    }
    const config = loadConfig({
      ...Object.fromEntries(
        [...apiEnvironment].filter(([, value]) => typeof value === 'string') as [string, string][],
      ),
      DATABASE_URL: 'postgres://app:app@db:5432/app',
      JWT_SECRET: 'a-secret-from-the-secret-a-secret-from-the-secret',
    });
    const annotations = ingress.metadata.annotations;
    for (const name of ['proxy-read-timeout', 'proxy-send-timeout']) {
      const value = Number(annotations[`nginx.ingress.kubernetes.io/${name}`]);
      // The ping and its answer are the only traffic of a quiet socket.
      expect(value, name).toBeGreaterThanOrEqual((2 * config.live.heartbeatIntervalMs) / 1000);
      // And every other request's answer comes within it.
      expect(value * 1000, name).toBeGreaterThan(config.http.requestTimeoutMs);
    }
    // The API, not the controller, refuses an oversized body (with its 413 problem).
    const body = /^(\d+)m$/.exec(annotations['nginx.ingress.kubernetes.io/proxy-body-size'] ?? '');
    expect(Number(body?.[1]) * 1024 * 1024).toBeGreaterThan(config.bodyLimitBytes);
    // ingress-nginx buffers nothing unless told to.
    expect(annotations['nginx.ingress.kubernetes.io/proxy-buffering'] ?? 'off').toBe('off');
  });

  it('commits no real secret', () => {
    for (const { document } of manifests.filter(({ document }) => document.kind === 'Secret')) {
      const values = Object.values({
        ...((document.stringData as Record<string, string> | undefined) ?? {}),
        ...((document.data as Record<string, string> | undefined) ?? {}),
      });
      for (const name of ['DATABASE_URL', 'JWT_SECRET']) {
        const value = (document.stringData as Record<string, string>)[name];
        expect(value, name).toBe('set-me');
      }
      expect(values.every((value) => value.length < 32)).toBe(true);
    }
  });
});
