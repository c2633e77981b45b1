import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { components } from '../../generated/api.js';
import { useTestApp, type TestApp } from '../helpers/app.js';
import { contractViolations } from '../helpers/contract.js';
import { expectProblem } from '../helpers/problems.js';

/**
 * The published spec (/openapi.json, /openapi.yaml) and the interactive reference (/docs)
 * through HTTP. The reference in a real browser: tests/e2e/docs.test.ts.
 */

type ProblemCode = components['schemas']['ProblemCode'];
type Spec = {
  servers: { url: string; description?: string }[];
  components: { schemas: { ProblemCode: { enum: ProblemCode[]; description: string } } };
};

const bundled = JSON.parse(
  readFileSync(new URL('../../generated/openapi.json', import.meta.url), 'utf8'),
) as Spec;

const kebab = (code: string) => code.toLowerCase().replace(/_/g, '-');

type LiveSpec = {
  info: { title: string };
  channels: Record<string, { address?: string | null; title: string }>;
  components: { messages: Record<string, { name: string }>; schemas: Record<string, unknown> };
  'x-close-codes': Record<string, { code: number }>;
  'x-limits': Record<string, number>;
};
const liveBundled = JSON.parse(
  readFileSync(new URL('../../generated/asyncapi.json', import.meta.url), 'utf8'),
) as LiveSpec;

async function servedDocuments(t: TestApp) {
  const json = await t.inject({ method: 'GET', url: '/openapi.json' });
  const yaml = await t.inject({ method: 'GET', url: '/openapi.yaml' });
  expect(json.statusCode).toBe(200);
  expect(yaml.statusCode).toBe(200);
  return { json: json.json<Spec>(), yaml: parseYaml(yaml.body) as Spec };
}

describe('with the default settings', () => {
  const t = useTestApp();

  describe('GET /openapi.yaml', () => {
    it('serves the bundled document as YAML, the same as /openapi.json', async () => {
      const res = await t.inject({ method: 'GET', url: '/openapi.yaml' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/yaml\b/);
      expect(res.body).toMatch(/^openapi: 3\.1\.\d+$/m);
      expect(parseYaml(res.body)).toStrictEqual(bundled);
      const { json, yaml } = await servedDocuments(t);
      expect(yaml).toStrictEqual(json);
    });

    it('keeps the relative server, so that "Try it out" calls the server that served it', async () => {
      const { json, yaml } = await servedDocuments(t);
      for (const document of [json, yaml]) {
        expect(document.servers.map((server) => server.url)).toEqual(['/']);
      }
    });

    it('is in the spec as getOpenApiDocumentYaml, answering application/yaml', () => {
      const spec = bundled as unknown as {
        paths: Record<
          string,
          { get?: { operationId: string; responses: Record<string, unknown> } }
        >;
      };
      const operation = spec.paths['/openapi.yaml']?.get;
      expect(operation?.operationId).toBe('getOpenApiDocumentYaml');
      expect(operation?.responses['200']).toMatchObject({
        content: { 'application/yaml': { schema: { type: 'string' } } },
      });
    });
  });

  describe('GET /', () => {
    it('redirects to the docs', async () => {
      const res = await t.inject({ method: 'GET', url: '/' });
      expect(res.statusCode).toBe(302);
      expect(res.headers.location).toBe('/docs');
    });
  });

  describe('GET /docs', () => {
    it('answers the reference page, whose scripts and styles are all this server’s own', async () => {
      const res = await t.inject({ method: 'GET', url: '/docs' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html\b/);
      const assets = [...res.body.matchAll(/(?:src|href)="([^"]*)"/g)].map((match) => match[1]!);
      expect(assets.length).toBeGreaterThanOrEqual(4);
      for (const asset of assets) {
        expect(asset, 'an asset of the page').toMatch(/^\/docs\//);
        const served = await t.inject({ method: 'GET', url: asset });
        expect(served.statusCode, asset).toBe(200);
      }
    });

    it('forbids the page to load anything from another host (Content-Security-Policy)', async () => {
      const res = await t.inject({ method: 'GET', url: '/docs' });
      const policy = String(res.headers['content-security-policy']);
      expect(policy).toContain("default-src 'self'");
      for (const directive of ['script-src', 'style-src', 'font-src', 'connect-src', 'img-src']) {
        expect(policy, directive).toMatch(new RegExp(`${directive} 'self'( data:)?(;|$)`));
      }
    });

    it('loads the published document: its own copies redirect to /openapi.json and /openapi.yaml', async () => {
      const json = await t.inject({ method: 'GET', url: '/docs/json' });
      expect(json.statusCode).toBe(302);
      expect(json.headers.location).toBe('/openapi.json');
      const yaml = await t.inject({ method: 'GET', url: '/docs/yaml' });
      expect(yaml.statusCode).toBe(302);
      expect(yaml.headers.location).toBe('/openapi.yaml');
      const initializer = await t.inject({
        method: 'GET',
        url: '/docs/static/swagger-initializer.js',
      });
      expect(initializer.body).toContain("resolveUrl('./json')");
    });

    it.each(['/docs/nope', '/docs/static/nope.js', '/docs/static/../../package.json', '/docsnope'])(
      'leaves %s to the 404 problem of every unknown path',
      async (url) => {
        const res = await t.inject({ method: 'GET', url });
        expectProblem(res, 404, 'NOT_FOUND');
      },
    );

    it('answers the 404 problem for a missing asset, which the contract check covers', async () => {
      const res = await t.inject({ method: 'GET', url: '/docs/static/missing.css' });
      expectProblem(res, 404, 'NOT_FOUND', '/docs/static/missing.css');
      // An asset route is excluded from the spec, yet its errors are unrouted problems.
      expect(
        contractViolations({
          method: 'GET',
          route: '/docs/static/*',
          statusCode: res.statusCode,
          contentType: res.headers['content-type'] as string | undefined,
          headers: res.headers,
          payload: res.body,
        }),
      ).toEqual([]);
      expect(
        contractViolations({
          method: 'GET',
          route: '/docs/static/*',
          statusCode: 404,
          contentType: 'text/html',
          headers: {},
          payload: '<h1>Not found</h1>',
        }),
      ).not.toEqual([]);
    });
  });

  describe('GET /docs/live', () => {
    it('shows every channel, message, close code and limit of the AsyncAPI document', async () => {
      const res = await t.inject({ method: 'GET', url: '/docs/live' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html\b/);
      const page = res.body;
      expect(page).toContain(`<title>${liveBundled.info.title}: reference</title>`);
      for (const channel of Object.values(liveBundled.channels)) {
        if (channel.address)
          expect(page).toContain(`<code class="channel-name">${channel.address}</code>`);
        expect(page).toContain(channel.title);
      }
      for (const name of Object.keys(liveBundled.components.messages)) {
        expect(page, name).toContain(`id="message-${name}"`);
      }
      for (const name of Object.keys(liveBundled.components.schemas)) {
        expect(page, name).toContain(`id="schema-${name}"`);
      }
      for (const [name, { code }] of Object.entries(liveBundled['x-close-codes'])) {
        expect(page, name).toContain(`<td><code>${code}</code></td><td><code>${name}</code></td>`);
      }
      for (const [name, value] of Object.entries(liveBundled['x-limits'])) {
        expect(page, name).toContain(`<td><code>${name}</code></td><td>${value}</td>`);
      }
      // The examples, escaped, and every $ref a link to an anchor of the page.
      expect(page).toContain('&quot;channel&quot;: &quot;posts&quot;');
      const anchors = new Set([...page.matchAll(/id="([^"]+)"/g)].map((match) => match[1]));
      const targets = [...page.matchAll(/href="#([^"]+)"/g)].map((match) => match[1]);
      expect(targets.length).toBeGreaterThan(50);
      expect(targets.filter((target) => !anchors.has(target))).toEqual([]);
    });

    it('runs no script and loads only its stylesheet from this server, under the policy of /docs', async () => {
      const res = await t.inject({ method: 'GET', url: '/docs/live' });
      expect(res.body).not.toMatch(/<script|\son[a-z]+=|style=/i);
      const assets = [...res.body.matchAll(/(?:src|href)="([^"#][^"]*)"/g)].map(
        (match) => match[1]!,
      );
      expect(assets).toEqual(
        expect.arrayContaining(['/docs/live/style.css', '/docs', '/docs/live/asyncapi.json']),
      );
      for (const asset of assets) {
        expect(asset, 'a link of the page').toMatch(/^\/docs(\/|$)/);
        const served = await t.inject({ method: 'GET', url: asset });
        expect(served.statusCode, asset).toBe(200);
      }
      const css = await t.inject({ method: 'GET', url: '/docs/live/style.css' });
      expect(css.headers['content-type']).toMatch(/^text\/css\b/);
      const docs = await t.inject({ method: 'GET', url: '/docs' });
      expect(res.headers['content-security-policy']).toContain("default-src 'self'");
      expect(res.headers['content-security-policy']).toBe(docs.headers['content-security-policy']);
      for (const header of ['x-content-type-options', 'x-frame-options', 'referrer-policy']) {
        expect(res.headers[header], header).toBe(docs.headers[header]);
      }
    });

    it('serves the document it renders, generated/asyncapi.json, as it is', async () => {
      const res = await t.inject({ method: 'GET', url: '/docs/live/asyncapi.json' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json\b/);
      expect(res.json()).toStrictEqual(liveBundled);
    });

    it('is linked from the reference at /docs, through the introduction of the spec', async () => {
      const { json } = await servedDocuments(t);
      const description = (json as unknown as { info: { description: string } }).info.description;
      expect(description).toContain('[`/docs/live`](/docs/live)');
    });
  });

  describe('the problem types, linked from the docs', () => {
    it('links every code of ProblemCode to its page, in the description the docs render', async () => {
      const { json } = await servedDocuments(t);
      const { enum: codes, description } = json.components.schemas.ProblemCode;
      const links = [...description.matchAll(/\[`([A-Z_]+)`\]\((\/problems\/[a-z-]+)\)/g)].map(
        (match) => [match[1], match[2]],
      );
      expect(links).toEqual(codes.map((code) => [code, `/problems/${kebab(code)}`]));
      for (const [code, url] of links) {
        const res = await t.inject({ method: 'GET', url: url! });
        expect(res.statusCode, url).toBe(200);
        expect(res.json()).toMatchObject({ code, type: url });
      }
    });

    it('links the docs, the YAML document and a few problem types from the introduction', async () => {
      const { json } = await servedDocuments(t);
      const description = (json as unknown as { info: { description: string } }).info.description;
      const links = [...description.matchAll(/\]\((\/[^)]*)\)/g)].map((match) => match[1]!);
      expect(links).toEqual(
        expect.arrayContaining([
          '/docs',
          '/docs/live',
          '/openapi.json',
          '/openapi.yaml',
          '/problems/unauthorized',
        ]),
      );
      for (const url of links) {
        const res = await t.inject({ method: 'GET', url });
        expect(res.statusCode, url).toBe(200);
      }
    });
  });
});

describe('with PUBLIC_API_URL', () => {
  const t = useTestApp({ PUBLIC_API_URL: 'https://api.example.com/' });

  it('publishes it as the only server, in JSON and YAML alike', async () => {
    const { json, yaml } = await servedDocuments(t);
    for (const document of [json, yaml]) {
      expect(document.servers).toEqual([
        { url: 'https://api.example.com', description: expect.any(String) },
      ]);
      // Nothing else differs from the bundled document.
      expect({ ...document, servers: bundled.servers }).toStrictEqual(bundled);
    }
  });

  it('lets the docs pages call that origin, and no other', async () => {
    for (const url of ['/docs', '/docs/live']) {
      const res = await t.inject({ method: 'GET', url });
      expect(res.headers['content-security-policy'], url).toMatch(
        /connect-src 'self' https:\/\/api\.example\.com;/,
      );
    }
  });

  it('still serves the routes from the spec it was built from', async () => {
    const res = await t.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
  });
});
