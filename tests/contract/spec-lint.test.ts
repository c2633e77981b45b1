import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot, specSourcePath } from '../../src/paths.js';

/**
 * The two spec linters of `npm run check`, run as the scripts run them (the project's
 * redocly.yaml and .spectral.yaml), on the spec and on a copy of it with defects planted,
 * one per rule under test, each at a place of its own: each defect must be reported by its
 * rule at its place, so that a rule that stopped working fails its own test.
 */

type Node = Record<string, unknown>;

/** The object at `keys` in `root` (each key one level down). */
function at(root: Node, ...keys: string[]): Node {
  return keys.reduce((node, key) => node[key] as Node, root);
}

interface Finding {
  rule: string;
  severity: 'error' | 'warning';
  /** A JSON pointer (Redocly's) or a path joined with `/` (Spectral's), into the document. */
  at: string;
}

interface LintRun {
  exitCode: number;
  findings: Finding[];
}

const bin = (path: string) => join(projectRoot, 'node_modules', path);

function run(args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args,
      { cwd: projectRoot, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ exitCode: code, stdout, stderr });
      },
    );
  });
}

async function redocly(file: string): Promise<LintRun> {
  const { exitCode, stdout, stderr } = await run([
    bin('@redocly/cli/bin/cli.js'),
    'lint',
    file,
    `--config=${join(projectRoot, 'redocly.yaml')}`,
    '--format=json',
  ]);
  const json = stdout.slice(stdout.indexOf('{'));
  if (!json) throw new Error(`redocly printed no report: ${stderr}`);
  const report = JSON.parse(json) as {
    problems: Array<{
      ruleId: string;
      severity: 'error' | 'warn';
      location: Array<{ pointer: string }>;
    }>;
  };
  return {
    exitCode,
    findings: report.problems.map((problem) => ({
      rule: problem.ruleId,
      severity: problem.severity === 'warn' ? 'warning' : 'error',
      at: problem.location[0]?.pointer ?? '',
    })),
  };
}

async function spectral(file: string): Promise<LintRun> {
  const { exitCode, stdout, stderr } = await run([
    bin('@stoplight/spectral-cli/dist/index.js'),
    'lint',
    file,
    `--ruleset=${join(projectRoot, '.spectral.yaml')}`,
    '--format=json',
    '--quiet',
  ]);
  const json = stdout.slice(stdout.indexOf('['));
  if (!json) throw new Error(`spectral printed no report: ${stderr}`);
  const report = JSON.parse(json) as Array<{ code: string; severity: number; path: string[] }>;
  return {
    exitCode,
    findings: report.map((result) => ({
      rule: result.code,
      severity: result.severity === 0 ? 'error' : 'warning',
      at: result.path.join('/'),
    })),
  };
}

const errors = (lint: LintRun) => lint.findings.filter((finding) => finding.severity === 'error');

/** Each defect planted in the copy of the spec. */
function plantDefects(spec: Node): void {
  const operation = (path: string, method: string) => at(spec, 'paths', path, method);
  const response = (path: string, method: string, status: string) =>
    at(operation(path, method), 'responses', status);
  const schema = (name: string, ...keys: string[]) =>
    at(spec, 'components', 'schemas', name, ...keys);

  // Redocly: an operation without a description.
  delete operation('/health', 'get').description;
  // Redocly: an operation that leaves its security to the root.
  delete operation('/ready', 'get').security;
  // Redocly: a 4xx whose problem is not the Problem schema.
  at(response('/problems/{code}', 'get', '404'), 'content', 'application/problem+json').schema = {
    type: 'object',
    properties: { message: { type: 'string', maxLength: 100 } },
  };
  // Redocly: a 5xx that is not application/problem+json.
  at(operation('/openapi.json', 'get'), 'responses')['500'] = {
    description: 'Broken.',
    headers: { 'X-Request-Id': { $ref: '#/components/headers/RequestId' } },
    content: {
      'application/json': {
        schema: { $ref: '#/components/schemas/Problem' },
        examples: { internal: { $ref: '#/components/examples/InternalErrorProblem' } },
      },
    },
  };
  // Redocly: a response without X-Request-Id.
  delete at(response('/api/users', 'get', '200'), 'headers')['X-Request-Id'];
  // Redocly: an API operation (each is rate limited) whose success does not declare
  // X-RateLimit-Reset.
  delete at(response('/api/auth/login', 'post', '200'), 'headers')['X-RateLimit-Reset'];
  delete at(response('/api/posts', 'get', '200'), 'headers')['X-RateLimit-Reset'];
  // Redocly: an operation without a rate limit (a probe) that declares one.
  at(response('/health', 'get', '200'), 'headers')['X-RateLimit-Limit'] = {
    $ref: '#/components/headers/RateLimitLimit',
  };
  // Redocly: a request body without an example.
  delete at(
    operation('/api/auth/password/forgot', 'post'),
    'requestBody',
    'content',
    'application/json',
  ).example;
  // Redocly: a component nothing uses.
  at(spec, 'components', 'schemas').Unused = { type: 'string', maxLength: 10, pattern: '^a+$' };

  // Spectral (OWASP): a string without maxLength.
  delete schema('Email').maxLength;
  // Spectral (OWASP): an integer without a format.
  delete schema('PostViews', 'properties', 'viewCount').format;
  // Spectral (OWASP): an array without maxItems.
  delete schema('PostPage', 'properties', 'items').maxItems;
  // Spectral (OWASP): an API operation's answer without rate-limit headers.
  delete at(response('/api/users/{id}', 'get', '200'), 'headers')['X-RateLimit-Limit'];
  // Spectral (OWASP): a write nobody has to sign in for, and that no override explains.
  operation('/api/posts', 'post').security = [];
}

let dir: string;
const lints: {
  redocly: LintRun;
  spectral: LintRun;
  plantedRedocly: LintRun;
  plantedSpectral: LintRun;
} = {} as never;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'spec-lint-'));
  const spec = (await SwaggerParser.parse(specSourcePath)) as Node;
  plantDefects(spec);
  // Named openapi.yaml like the spec, as .spectral.yaml's overrides name it (JSON is YAML).
  const planted = join(dir, 'openapi.yaml');
  await writeFile(planted, JSON.stringify(spec, null, 2));
  // The four runs at once: each linter takes a second or a few.
  [lints.redocly, lints.spectral, lints.plantedRedocly, lints.plantedSpectral] = await Promise.all([
    redocly(specSourcePath),
    spectral(specSourcePath),
    redocly(planted),
    spectral(planted),
  ]);
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the spec', () => {
  it('passes redocly lint with no error and no warning', () => {
    expect(lints.redocly.findings).toEqual([]);
    expect(lints.redocly.exitCode).toBe(0);
  });

  it('passes Spectral (spectral:oas and the OWASP API Security rules) with no error', () => {
    expect(errors(lints.spectral)).toEqual([]);
    expect(lints.spectral.exitCode).toBe(0);
  });
});

describe('redocly lint fails on a planted defect', () => {
  const reported = (rule: string, at: string) => {
    expect(lints.plantedRedocly.exitCode).not.toBe(0);
    expect(errors(lints.plantedRedocly)).toContainEqual({ rule, severity: 'error', at });
  };

  it('an operation without a description', () => {
    reported('operation-description', '#/paths/~1health/get/description');
  });

  it('an operation without its own security', () => {
    reported('rule/operation-security-explicit', '#/paths/~1ready/get');
  });

  it('a 4xx response whose schema is not the Problem schema', () => {
    reported(
      'rule/error-response-schema-is-problem',
      '#/paths/~1problems~1{code}/get/responses/404/content/application~1problem+json/schema',
    );
  });

  it('a 5xx response that is not application/problem+json', () => {
    reported(
      'rule/error-response-is-problem-json',
      '#/paths/~1openapi.json/get/responses/500/content/application~1json',
    );
  });

  it('a response without X-Request-Id', () => {
    reported('rule/response-has-request-id', '#/paths/~1api~1users/get/responses/200/headers');
  });

  it('a response of an API operation without the X-RateLimit-* headers', () => {
    reported(
      'rule/rate-limited-response-headers',
      '#/paths/~1api~1auth~1login/post/responses/200/headers',
    );
    reported(
      'rule/rate-limited-response-headers',
      '#/paths/~1api~1posts/get/responses/200/headers',
    );
  });

  it('a response of an operation without a rate limit that declares one', () => {
    reported(
      'rule/unlimited-response-no-rate-limit-headers',
      '#/paths/~1health/get/responses/200/headers/X-RateLimit-Limit',
    );
  });

  it('a request body without an example', () => {
    reported(
      'rule/media-type-example',
      '#/paths/~1api~1auth~1password~1forgot/post/requestBody/content/application~1json',
    );
  });

  it('a component nothing uses', () => {
    reported('no-unused-components', '#/components/schemas/Unused');
  });
});

describe('Spectral (OWASP API Security) fails on a planted defect', () => {
  const reported = (rule: string, at: string) => {
    expect(lints.plantedSpectral.exitCode).not.toBe(0);
    expect(errors(lints.plantedSpectral)).toContainEqual({ rule, severity: 'error', at });
  };

  it('a string without maxLength', () => {
    reported('owasp:api4:2023-string-limit', 'components/schemas/Email');
  });

  it('an integer without a format', () => {
    reported('owasp:api4:2023-integer-format', 'components/schemas/PostViews/properties/viewCount');
  });

  it('an array without maxItems', () => {
    reported('owasp:api4:2023-array-limit', 'components/schemas/PostPage/properties/items');
  });

  it('an answer of an API operation without rate-limit headers', () => {
    reported('owasp:api4:2023-rate-limit', 'paths//api/users/{id}/get/responses/200/headers');
  });

  it('a public write that no override explains', () => {
    reported('owasp:api2:2023-write-restricted', 'paths//api/posts/post/security');
  });
});
