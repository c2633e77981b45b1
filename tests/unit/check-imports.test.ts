import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importProblems } from '../../scripts/check-imports.js';
import { projectRoot } from '../../src/paths.js';

/** Trees laid out like src/, each breaking one rule, checked as `npm run check` checks src/. */
let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(projectRoot, 'tests', '.imports-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

async function tree(name: string, files: Record<string, string>): Promise<string> {
  const root = join(base, name);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), `${content}\nexport const here = 1;\n`);
  }
  return root;
}

describe('the import check', () => {
  it('passes src/ as it is', async () => {
    expect(await importProblems(join(projectRoot, 'src'))).toEqual([]);
  }, 30_000);

  it('finds a cycle between files', async () => {
    const root = await tree('file-cycle', {
      'lib/a.ts': "import './b.js';",
      'lib/b.ts': "import './a.js';",
    });
    expect(await importProblems(root)).toEqual([
      expect.stringMatching(/^no-file-cycle: .*lib\/a\.ts → .*lib\/b\.ts → .*lib\/a\.ts$/),
    ]);
  }, 30_000);

  it('finds two modules that import each other, file by file without a cycle', async () => {
    const root = await tree('module-cycle', {
      'modules/auth/service.ts': "import '../users/repository.js';",
      'modules/users/repository.ts': '',
      'modules/users/service.ts': "import '../auth/tokens.js';",
      'modules/auth/tokens.ts': '',
    });
    expect(await importProblems(root)).toEqual([
      expect.stringMatching(/circle: modules\/auth, modules\/users$/),
    ]);
  }, 30_000);

  it('finds HTTP below the handlers and modules inside src/http', async () => {
    const root = await tree('layers', {
      'http/errors.ts': '',
      'http/security.ts': "import '../modules/auth/tokens.js';",
      'modules/auth/tokens.ts': '',
      'modules/users/service.ts': "import '../../http/errors.js';",
      'modules/users/handlers.ts': "import '../../http/errors.js';",
      'lib/cursor.ts': "import '../http/errors.js';",
    });
    const problems = await importProblems(root);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^http-imports-no-module: .*http\/security\.ts/),
        expect.stringMatching(/^only-handlers-import-http: .*modules\/users\/service\.ts/),
        expect.stringMatching(/^lower-layers-import-no-upper: .*lib\/cursor\.ts/),
      ]),
    );
    expect(problems.join('\n')).not.toMatch(/handlers\.ts/);
  }, 30_000);

  it('finds modules inside src/plugins, and plugins inside src/http', async () => {
    const root = await tree('plugins', {
      'http/errors.ts': '',
      'http/contract.ts': "import '../plugins/metrics.js';",
      'plugins/metrics.ts': "import '../http/errors.js';",
      'plugins/background.ts': "import '../modules/email/delivery.js';",
      'modules/email/delivery.ts': '',
      'db/client.ts': "import '../plugins/metrics.js';",
    });
    const problems = await importProblems(root);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^plugins-import-no-module: .*plugins\/background\.ts/),
        expect.stringMatching(/^http-imports-no-plugin: .*http\/contract\.ts/),
        expect.stringMatching(/^lower-layers-import-no-upper: .*db\/client\.ts/),
      ]),
    );
  }, 30_000);

  it('finds modules, HTTP and plugins inside src/jobs, and the jobs inside src/lib', async () => {
    const root = await tree('jobs', {
      'jobs/queue.ts': "import '../modules/events/types.js';",
      'jobs/backend.ts': "import '../http/errors.js';",
      'jobs/metrics.ts': "import '../plugins/metrics.js';",
      'jobs/names.ts': "import '../lib/timeout.js';",
      'modules/events/types.ts': '',
      'http/errors.ts': '',
      'plugins/metrics.ts': '',
      'lib/timeout.ts': '',
      'lib/periodic.ts': "import '../jobs/queue.js';",
    });
    const problems = await importProblems(root);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^jobs-import-no-module: .*jobs\/queue\.ts → .*modules\/events/),
        expect.stringMatching(/^jobs-import-no-module: .*jobs\/backend\.ts → .*http\/errors/),
        expect.stringMatching(/^jobs-import-no-module: .*jobs\/metrics\.ts → .*plugins\/metrics/),
        expect.stringMatching(/^lower-layers-import-no-upper: .*lib\/periodic\.ts/),
      ]),
    );
    expect(problems.join('\n')).not.toMatch(/jobs\/names\.ts/);
  }, 30_000);
});
