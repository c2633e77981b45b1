import { readFile } from 'node:fs/promises';
import { fromFile, Parser } from '@asyncapi/parser';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { exampleProblems, lintAsyncApi } from '../../scripts/check-asyncapi.js';
import { messageSides } from '../../src/http/live-messages.js';
import { eventTypes } from '../../src/modules/events/types.js';
import { asyncApiSourcePath, bundledAsyncApiPath, specSourcePath } from '../../src/paths.js';
import { loadAsyncApi, loadSpec } from '../../src/spec.js';

/**
 * openapi/asyncapi.yaml, the WebSocket's contract: a valid AsyncAPI 3 document, whose
 * external $refs all name schemas of openapi.yaml, whose every message has an example of
 * itself, whose events are the webhooks' envelopes, and whose close codes are stated once
 * for programs and once for people.
 */

type Json = Record<string, unknown>;

const live = loadAsyncApi();
const spec = loadSpec() as unknown as {
  components: { schemas: Json };
  webhooks: Record<
    string,
    { post: { requestBody: { content: Record<string, { schema: { $ref: string } }> } } }
  >;
};

function refsOf(node: unknown, refs: string[] = []): string[] {
  if (Array.isArray(node)) for (const item of node) refsOf(item, refs);
  else if (typeof node === 'object' && node !== null)
    for (const [key, value] of Object.entries(node))
      if (key === '$ref' && typeof value === 'string') refs.push(value);
      else refsOf(value, refs);
  return refs;
}

describe('openapi/asyncapi.yaml', () => {
  it('is a valid AsyncAPI document without warnings, and so is generated/asyncapi.json', async () => {
    for (const path of [asyncApiSourcePath, bundledAsyncApiPath]) {
      const findings = await lintAsyncApi(path);
      expect(
        findings.filter(({ severity }) => severity === 'error' || severity === 'warning'),
      ).toEqual([]);
    }
  }, 60_000);

  it("names, outside itself, only schemas of openapi.yaml's components, which the parser resolves", async () => {
    const source = parse(await readFile(asyncApiSourcePath, 'utf8')) as Json;
    const root = parse(await readFile(specSourcePath, 'utf8')) as { components: { schemas: Json } };
    const external = refsOf(source).filter((ref) => !ref.startsWith('#'));
    expect(external.length).toBeGreaterThan(10);
    for (const ref of external) {
      expect(ref).toMatch(/^\.\/openapi\.yaml#\/components\/schemas\/[A-Za-z]+$/);
      expect(Object.keys(root.components.schemas)).toContain(ref.split('/').at(-1));
    }

    const { document } = await fromFile(new Parser(), asyncApiSourcePath).parse();
    const error = document!.components().messages().get('error')!;
    const problem = error.payload()!.properties()!.problem!;
    expect(Object.keys(problem.properties() ?? {})).toEqual(
      Object.keys((spec.components.schemas.Problem as { properties: Json }).properties),
    );
  }, 60_000);

  it('carries the OpenAPI schemas it names, unchanged, into generated/asyncapi.json', () => {
    const copied = Object.keys(live.components.schemas).filter(
      (name) => name in spec.components.schemas,
    );
    expect(copied).toEqual(expect.arrayContaining(['Post', 'PostSummary', 'Problem', 'User']));
    for (const name of copied)
      expect(live.components.schemas[name], name).toEqual(spec.components.schemas[name]);
  });

  it('gives every message an example, and each is a valid message of its sender', () => {
    expect(exampleProblems(live)).toEqual([]);
    for (const message of Object.values(live.components.messages))
      expect((message as { examples?: unknown[] }).examples?.length).toBeGreaterThan(0);
  });

  it('names an example that breaks its schema, and a message without one', () => {
    const broken = structuredClone(live) as typeof live & {
      components: { messages: Record<string, { examples?: Array<{ payload: Json }> }> };
    };
    broken.components.messages.subscribe!.examples![0]!.payload.channel = 'users';
    broken.components.messages.pong!.examples![0]!.payload.id = 7;
    delete broken.components.messages.ping!.examples;
    const problems = exampleProblems(broken);
    expect(problems).toHaveLength(3);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^message subscribe, example posts: .*\/channel/),
        expect.stringMatching(/^message pong, example pong: .*\/id must be string/),
        'message ping has no example',
      ]),
    );
  });

  it("tells posts' events in the webhooks' envelopes: whole on posts/{id}, summaries on posts", () => {
    const postTypes = eventTypes.filter((type) => type.startsWith('post.'));
    const eventsOf = (schema: string) =>
      (
        live.components.schemas[schema] as {
          properties: { event: { oneOf: Array<{ $ref: string }> } };
        }
      ).properties.event.oneOf.map(({ $ref }) => $ref.replace('#/components/schemas/', ''));
    const typeOf = (schema: string) =>
      (live.components.schemas[schema] as { properties: { type: { const: string } } }).properties
        .type.const;
    const webhookSchema = (type: string) =>
      spec.webhooks[type]!.post.requestBody.content['application/json']!.schema.$ref.replace(
        '#/components/schemas/',
        '',
      );

    const onePost = eventsOf('PostEventMessage');
    for (const type of postTypes) expect(onePost).toContain(webhookSchema(type));
    expect(onePost.map(typeOf).sort()).toEqual([...postTypes, 'post.viewed'].sort());

    const posts = eventsOf('PostsEventMessage');
    expect(posts.map(typeOf).sort()).toEqual([...postTypes].sort());
    for (const schema of posts) {
      const { data } = (
        live.components.schemas[schema] as { properties: { data: { $ref: string } } }
      ).properties;
      const webhookData = (
        spec.components.schemas[webhookSchema(typeOf(schema))] as {
          properties: { data: { $ref: string } };
        }
      ).properties.data.$ref;
      // Published and changed posts come as summaries; the others as their webhooks have them.
      expect(data.$ref).toBe(
        webhookData === '#/components/schemas/Post'
          ? '#/components/schemas/PostSummary'
          : webhookData,
      );
    }
  });

  it('sends every message from one side only: the client its four, the server the rest', () => {
    const { client, server } = messageSides(live);
    expect([...client.keys()]).toEqual(['auth', 'subscribe', 'unsubscribe', 'ping']);
    expect([...server.keys()].sort()).toEqual([
      'authenticated',
      'error',
      'meEvent',
      'pong',
      'postEvent',
      'postsEvent',
      'subscribed',
      'unsubscribed',
    ]);
    expect([...client.keys(), ...server.keys()].sort()).toEqual(
      Object.keys(live.components.messages).sort(),
    );
  });

  it('states each close code for programs (x-close-codes) and in its description, and only sendable ones', () => {
    const description = (live as unknown as { info: { description: string } }).info.description;
    const codes = Object.entries(live['x-close-codes']);
    expect(new Set(codes.map(([, { code }]) => code)).size).toBe(codes.length);
    for (const [name, { code }] of codes) {
      expect(description).toContain(`| ${code} | ${name} |`);
      // 1005, 1006 and 1015 are never sent in a close frame (RFC 6455 §7.4.1).
      expect(
        code === 1000 ||
          (code >= 1001 && code <= 1014 && code !== 1005 && code !== 1006) ||
          (code >= 3000 && code <= 4999),
        `${code}`,
      ).toBe(true);
    }
    expect(description.match(/^\| \d{4} \|/gm)).toHaveLength(codes.length);
  });
});
