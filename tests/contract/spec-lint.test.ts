import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { projectRoot, specSourcePath } from '../../src/paths.js';

/**
 * The two spec linters of `npm run check`, run as the scripts run them (the project's
 * redocly.yaml and .spectral.yaml), on the spec and on a copy of its files with defects
 * planted, one per rule under test, each at a place of its own: each defect must be reported
 * by its rule at its place (the file under openapi/ and the place in it), so that a rule that
 * stopped working, or an override that reaches further than the file it names, fails its own
 * test.
 */

type Node = Record<string, unknown>;

/** The object at `keys` in `root` (each key one level down). */
function at(root: Node, ...keys: string[]): Node {
  return keys.reduce((node, key) => node[key] as Node, root);
}

interface Finding {
  rule: string;
  severity: 'error' | 'warning';
  /**
   * The file, relative to the spec's folder, then `#` and a JSON pointer into it (Redocly's)
   * or its path joined with `/` (Spectral's): `paths/health.yaml#/get/description`.
   */
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

/** Where a finding is, as Finding.at gives it; `source` is relative to the project or absolute. */
const place = (source: string, inFile: string, file: string) =>
  `${relative(dirname(file), resolve(projectRoot, source)).replaceAll('\\', '/')}#${inFile}`;

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
      location: Array<{ source: { ref: string }; pointer: string }>;
    }>;
  };
  return {
    exitCode,
    findings: report.problems.map((problem) => {
      const location = problem.location[0];
      return {
        rule: problem.ruleId,
        severity: problem.severity === 'warn' ? 'warning' : 'error',
        at: location ? place(location.source.ref, location.pointer.slice(1), file) : '',
      };
    }),
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
  const report = JSON.parse(json) as Array<{
    code: string;
    severity: number;
    path: string[];
    source: string;
  }>;
  return {
    exitCode,
    findings: report.map((result) => ({
      rule: result.code,
      severity: result.severity === 0 ? 'error' : 'warning',
      at: place(result.source, `/${result.path.join('/')}`, file),
    })),
  };
}

const errors = (lint: LintRun) => lint.findings.filter((finding) => finding.severity === 'error');

/** The spec's files in a folder of their own, each read and written back as a whole. */
class SpecFiles {
  constructor(readonly dir: string) {}

  async edit(file: string, change: (document: Node) => void): Promise<void> {
    const path = join(this.dir, file);
    const document = parse(await readFile(path, 'utf8')) as Node;
    change(document);
    // JSON is YAML: the linters read it as they read the spec's own files.
    await writeFile(path, JSON.stringify(document, null, 2));
  }
}

// A planted $ref, from a file in openapi/paths/.
const component = (type: string, name: string) => ({
  $ref: `../components/${type}/${name}.yaml`,
});

/** Each defect planted in the copy of the spec, in the file a person would edit. */
async function plantDefects(files: SpecFiles): Promise<void> {
  const response = (operation: Node, status: string) => at(operation, 'responses', status);

  // Redocly: an operation without a description.
  // Redocly: an operation without a rate limit (a probe) that declares one.
  await files.edit('paths/health.yaml', (item) => {
    delete at(item, 'get').description;
    at(response(at(item, 'get'), '200'), 'headers')['X-RateLimit-Limit'] = component(
      'headers',
      'RateLimitLimit',
    );
  });
  // Redocly: an operation that leaves its security to the root.
  await files.edit('paths/ready.yaml', (item) => {
    delete at(item, 'get').security;
  });
  // Redocly: a 4xx whose problem is not the Problem schema.
  await files.edit('paths/problems_{code}.yaml', (item) => {
    at(response(at(item, 'get'), '404'), 'content', 'application/problem+json').schema = {
      type: 'object',
      properties: { message: { type: 'string', maxLength: 100 } },
    };
  });
  // Redocly: a 5xx that is not application/problem+json.
  await files.edit('paths/openapi.json.yaml', (item) => {
    at(item, 'get', 'responses')['500'] = {
      description: 'Broken.',
      headers: { 'X-Request-Id': component('headers', 'RequestId') },
      content: {
        'application/json': {
          schema: component('schemas', 'Problem'),
          examples: { internal: component('examples', 'InternalErrorProblem') },
        },
      },
    };
  });
  // Redocly: a response without X-Request-Id.
  await files.edit('paths/api_users.yaml', (item) => {
    delete at(response(at(item, 'get'), '200'), 'headers')['X-Request-Id'];
  });
  await files.edit('paths/api_posts.yaml', (item) => {
    // Spectral (OWASP): a write nobody has to sign in for, and that no override explains
    // (an override of the same rule names the POST of /api/users, in another file).
    at(item, 'post').security = [];
    // Redocly: an API operation (each is rate limited) whose success does not declare
    // X-RateLimit-Reset.
    delete at(response(at(item, 'get'), '200'), 'headers')['X-RateLimit-Reset'];
  });
  await files.edit('paths/api_auth_login.yaml', (item) => {
    delete at(response(at(item, 'post'), '200'), 'headers')['X-RateLimit-Reset'];
  });
  // Redocly: a request body without an example.
  await files.edit('paths/api_auth_password_forgot.yaml', (item) => {
    delete at(item, 'post', 'requestBody', 'content', 'application/json').example;
  });
  // Spectral (OWASP): a string without maxLength.
  await files.edit('components/schemas/Email.yaml', (schema) => {
    delete schema.maxLength;
  });
  // Spectral (OWASP): an integer without a format.
  await files.edit('components/schemas/PostViews.yaml', (schema) => {
    delete at(schema, 'properties', 'viewCount').format;
  });
  // Spectral (OWASP): an array without maxItems.
  await files.edit('components/schemas/PostPage.yaml', (schema) => {
    delete at(schema, 'properties', 'items').maxItems;
  });
  // Spectral (OWASP): an API operation's answer without rate-limit headers.
  await files.edit('paths/api_users_{id}.yaml', (item) => {
    delete at(response(at(item, 'get'), '200'), 'headers')['X-RateLimit-Limit'];
  });
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
  // The whole folder, named as .spectral.yaml's overrides name the files (by base name).
  const copy = join(dir, 'openapi');
  await cp(dirname(specSourcePath), copy, { recursive: true });
  await plantDefects(new SpecFiles(copy));
  const planted = join(copy, 'openapi.yaml');
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
    reported('operation-description', 'paths/health.yaml#/get/description');
  });

  it('an operation without its own security', () => {
    reported('rule/operation-security-explicit', 'paths/ready.yaml#/get');
  });

  it('a 4xx response whose schema is not the Problem schema', () => {
    reported(
      'rule/error-response-schema-is-problem',
      'paths/problems_{code}.yaml#/get/responses/404/content/application~1problem+json/schema',
    );
  });

  it('a 5xx response that is not application/problem+json', () => {
    reported(
      'rule/error-response-is-problem-json',
      'paths/openapi.json.yaml#/get/responses/500/content/application~1json',
    );
  });

  it('a response without X-Request-Id', () => {
    reported('rule/response-has-request-id', 'paths/api_users.yaml#/get/responses/200/headers');
  });

  it('a response of an API operation without the X-RateLimit-* headers', () => {
    reported(
      'rule/rate-limited-response-headers',
      'paths/api_auth_login.yaml#/post/responses/200/headers',
    );
    reported(
      'rule/rate-limited-response-headers',
      'paths/api_posts.yaml#/get/responses/200/headers',
    );
  });

  it('a response of an operation without a rate limit that declares one', () => {
    reported(
      'rule/unlimited-response-no-rate-limit-headers',
      'paths/health.yaml#/get/responses/200/headers/X-RateLimit-Limit',
    );
  });

  it('a request body without an example', () => {
    reported(
      'rule/media-type-example',
      'paths/api_auth_password_forgot.yaml#/post/requestBody/content/application~1json',
    );
  });
});

describe('Spectral (OWASP API Security) fails on a planted defect', () => {
  const reported = (rule: string, at: string) => {
    expect(lints.plantedSpectral.exitCode).not.toBe(0);
    expect(errors(lints.plantedSpectral)).toContainEqual({ rule, severity: 'error', at });
  };

  it('a string without maxLength', () => {
    reported('owasp:api4:2023-string-limit', 'components/schemas/Email.yaml#/');
  });

  it('an integer without a format', () => {
    reported(
      'owasp:api4:2023-integer-format',
      'components/schemas/PostViews.yaml#/properties/viewCount',
    );
  });

  it('an array without maxItems', () => {
    reported('owasp:api4:2023-array-limit', 'components/schemas/PostPage.yaml#/properties/items');
  });

  it('an answer of an API operation without rate-limit headers', () => {
    reported('owasp:api4:2023-rate-limit', 'paths/api_users_{id}.yaml#/get/responses/200/headers');
  });

  it('a public write that no override explains', () => {
    reported('owasp:api2:2023-write-restricted', 'paths/api_posts.yaml#/post/security');
  });
});
