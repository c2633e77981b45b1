import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { kill, startedServer, type Server } from './processes.js';

/**
 * The interactive reference as a reader sees it: the server as `npm start` runs it, on a
 * real port, and /docs in headless Chromium (Debian's `chromium`, which `.ci/run`
 * installs), driven by playwright-core. The page must list every operation of the spec,
 * open one, call the API from it, link every problem type, and fetch nothing from any
 * host but the server. A screenshot of the opened operation is left in test-artifacts/.
 * The same goes for the WebSocket's page beside it, /docs/live.
 */

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(executablePath);
// In CI a missing browser is a failure (the launch says so); on a developer's machine, a skip.
const skip = !hasChromium && !process.env.CI;
if (skip) {
  console.warn(
    `tests/e2e/docs.test.ts skipped: no Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)`,
  );
}

const screenshotPath = join(projectRoot, 'test-artifacts', 'docs.png');

type SpecOperation = { operationId: string; summary: string; tags: string[] };
const spec = JSON.parse(readFileSync(join(projectRoot, 'generated', 'openapi.json'), 'utf8')) as {
  paths: Record<string, Record<string, SpecOperation>>;
  webhooks: Record<string, { post: SpecOperation }>;
  components: { schemas: { ProblemCode: { enum: string[] } } };
};
const liveSpec = JSON.parse(
  readFileSync(join(projectRoot, 'generated', 'asyncapi.json'), 'utf8'),
) as {
  info: { title: string; version: string };
  channels: Record<string, { address?: string | null }>;
  components: { messages: Record<string, unknown> };
};
const methods = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);
const operations = Object.entries(spec.paths).flatMap(([path, item]) =>
  Object.entries(item)
    .filter(([method]) => methods.has(method))
    .map(([method, operation]) => ({ method, path, ...operation })),
);

/** What the page's elements offer here (the DOM's types are not part of this project). */
type Element = {
  textContent: string | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): Element | null;
};

/** Where the page may send requests: the server, and data the page holds itself. */
function isLocal(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  if (protocol === 'data:' || protocol === 'blob:' || protocol === 'about:') return true;
  return ['127.0.0.1', 'localhost', '[::1]'].includes(hostname);
}

describe.skipIf(skip)('the docs page in Chromium', () => {
  let db: TestDatabase | undefined;
  let dataDir: string;
  let server: Server;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const requested: string[] = [];
  const errors: string[] = [];

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'api-docs-'));
    db = process.env.TEST_DATABASE_URL ? await createTestDatabase() : undefined;
    server = await startedServer(db?.url ? { DATABASE_URL: db.url } : { DATA_DIR: dataDir });
    browser = await chromium.launch({
      executablePath,
      // Chromium's sandbox refuses to run as root (CI's user); /dev/shm is small in containers.
      args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-dev-shm-usage'],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.on('request', (request) => requested.push(request.url()));
    // Whatever tries to leave is recorded above and stopped here.
    await context.route(
      (url) => !isLocal(url.href),
      (route) => route.abort('blockedbyclient'),
    );
    page = await context.newPage();
    // A Content-Security-Policy violation or a failed asset shows as a console error.
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${server.base}/`);
    await page.locator('.opblock').first().waitFor();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await kill(server);
    await db?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('is where / leads, titled after the spec', async () => {
    expect(new URL(page.url()).pathname).toBe('/docs');
    await expect(page.locator('.info .title').innerText()).resolves.toMatch(/^Contract-first API/);
  });

  it('lists every operation of the spec with its method, path and summary', async () => {
    const expected = operations
      .map(({ method, path, summary }) => `${method.toUpperCase()} ${path} ${summary}`)
      .sort();
    // The operations' blocks, not the webhooks' (below them, in a section of their own).
    const blocks = page.locator('.opblock:not(.webhooks .opblock)');
    await expect.poll(() => blocks.count(), { timeout: 15_000 }).toBe(operations.length);
    const rendered = await blocks.evaluateAll((elements: Element[]) =>
      elements.map((element) =>
        [
          element.querySelector('.opblock-summary-method')?.textContent,
          element.querySelector('.opblock-summary-path')?.getAttribute('data-path'),
          element.querySelector('.opblock-summary-description')?.textContent,
        ].join(' '),
      ),
    );
    expect(rendered.sort()).toEqual(expected);
    for (const { summary } of operations) {
      await expect(
        page.locator('.opblock-summary-description', { hasText: summary }).first().isVisible(),
        summary,
      ).resolves.toBe(true);
    }
  });

  it('lists every webhook of the spec under "Webhooks", with its event type and summary', async () => {
    const section = page.locator('.webhooks');
    await expect(section.locator('h2').innerText()).resolves.toBe('Webhooks');
    const blocks = section.locator('.opblock');
    const webhooks = Object.entries(spec.webhooks);
    await expect.poll(() => blocks.count(), { timeout: 15_000 }).toBe(webhooks.length);
    const rendered = await blocks.evaluateAll((elements: Element[]) =>
      elements.map((element) =>
        [
          element.querySelector('.opblock-summary-method')?.textContent,
          element.querySelector('.opblock-summary-path')?.getAttribute('data-path'),
          element.querySelector('.opblock-summary-description')?.textContent,
        ].join(' '),
      ),
    );
    expect(rendered.sort()).toEqual(
      webhooks.map(([type, { post }]) => `POST ${type} ${post.summary}`).sort(),
    );
  });

  it('opens an operation: its parameters, its responses, and "Try it out" against this server', async () => {
    const operation = page.locator('#operations-meta-getProblemType');
    await operation.locator('.opblock-summary').click();
    const parameters = operation.locator('.parameters');
    await parameters.waitFor();
    const rows = parameters.locator('tr[data-param-name]');
    await expect(
      rows.evaluateAll((found: Element[]) =>
        found.map(
          (row) => `${row.getAttribute('data-param-in')} ${row.getAttribute('data-param-name')}`,
        ),
      ),
    ).resolves.toEqual(['path code']);
    await expect(rows.first().innerText()).resolves.toContain('kebab-case');
    const statuses = await operation
      .locator('.responses-wrapper .responses-table > tbody > tr.response')
      .evaluateAll((rows: Element[]) => rows.map((row) => row.getAttribute('data-code')));
    expect(statuses).toEqual(['200', '400', '404', '414', '500']);

    await operation.locator('button.try-out__btn').click();
    await operation.locator('input[placeholder="code"]').fill('validation-error');
    await operation.locator('button.execute').click();
    const live = operation.locator('.live-responses-table');
    const status = live.locator('tbody .response-col_status').first();
    await status.waitFor();
    await expect(status.innerText()).resolves.toBe('200');
    await expect(live.innerText()).resolves.toContain('"code": "VALIDATION_ERROR"');
    // "Try it out" followed the spec's relative server: the server that served the page.
    await expect(operation.locator('.request-url pre').innerText()).resolves.toBe(
      `${server.base}/problems/validation-error`,
    );

    await mkdir(join(projectRoot, 'test-artifacts'), { recursive: true });
    await operation.scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshotPath });
    expect(existsSync(screenshotPath)).toBe(true);
  });

  it('links every problem type from the Schemas, and each link resolves', async () => {
    const model = page
      .locator('section.models article[data-json-schema-level="0"]')
      .filter({ has: page.locator('.json-schema-2020-12__title', { hasText: /^ProblemCode$/ }) });
    await model.locator('.json-schema-2020-12-accordion').first().click();
    const links = model.locator('.json-schema-2020-12-keyword--description a');
    await links.first().waitFor();
    const targets = await links.evaluateAll((anchors: Element[]) =>
      anchors.map((anchor) => [anchor.textContent, anchor.getAttribute('href')]),
    );
    expect(targets).toEqual(
      spec.components.schemas.ProblemCode.enum.map((code) => [
        code,
        `/problems/${code.toLowerCase().replace(/_/g, '-')}`,
      ]),
    );
    for (const [code, href] of targets) {
      const res = await page.request.get(`${server.base}${href}`);
      expect(res.status(), href!).toBe(200);
      expect(((await res.json()) as { code: string }).code).toBe(code);
    }
  });

  it('links to the WebSocket page, /docs/live, which shows every channel and message and links back', async () => {
    const link = page.locator('.info a[href="/docs/live"]');
    await expect(link.isVisible()).resolves.toBe(true);
    const live = await context.newPage();
    live.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    live.on('pageerror', (error) => errors.push(error.message));
    await live.goto(`${server.base}/docs/live`);
    await expect(live.locator('h1').innerText()).resolves.toBe(
      `${liveSpec.info.title} ${liveSpec.info.version}`,
    );
    const addresses = Object.values(liveSpec.channels)
      .map((channel) => channel.address)
      .filter((address): address is string => typeof address === 'string');
    await expect(live.locator('.channel-name').allInnerTexts()).resolves.toEqual(addresses);
    for (const address of addresses) {
      await expect(
        live.locator('.channel-name', { hasText: address }).first().isVisible(),
        address,
      ).resolves.toBe(true);
    }
    await expect(live.locator('section.message').count()).resolves.toBe(
      Object.keys(liveSpec.components.messages).length,
    );
    // Its stylesheet applied (the policy lets it in), and a link back to /docs.
    await expect(
      live
        .locator('section.channel')
        .first()
        .evaluate(
          (element: unknown) =>
            (
              globalThis as unknown as { getComputedStyle(e: unknown): { borderLeftStyle: string } }
            ).getComputedStyle(element).borderLeftStyle,
        ),
    ).resolves.toBe('solid');
    await expect(live.locator('header a[href="/docs"]').isVisible()).resolves.toBe(true);
    const paths = requested.map((url) => new URL(url).pathname);
    expect(paths).toEqual(expect.arrayContaining(['/docs/live', '/docs/live/style.css']));
    await mkdir(join(projectRoot, 'test-artifacts'), { recursive: true });
    await live.locator('#channels').scrollIntoViewIfNeeded();
    await live.screenshot({ path: join(projectRoot, 'test-artifacts', 'docs-live.png') });
    await live.close();
  });

  it('fetches everything from the server itself, the document from /openapi.json, without errors', () => {
    const foreign = requested.filter((url) => !isLocal(url));
    expect(foreign, 'requests to another host').toEqual([]);
    const paths = requested.map((url) => new URL(url).pathname);
    expect(paths).toContain('/openapi.json');
    expect(paths.filter((path) => path.startsWith('/docs/static/')).length).toBeGreaterThan(3);
    expect(
      errors,
      'console errors (a blocked request, a policy violation, a script error)',
    ).toEqual([]);
  });
});
