import { describe, expect, expectTypeOf, it } from 'vitest';
import type { operations, paths, webhooks } from '../../generated/api.js';
import type { OperationId } from '../../src/http/handler-types.js';
import { createWebhookPayloadCheck, WebhookPayloadError } from '../../src/http/webhook-payloads.js';
import { eventTypes, testEventType, type EventType } from '../../src/modules/events/types.js';
import { loadSpec } from '../../src/spec.js';

/**
 * The spec's `webhooks:` against the event types the code records (src/modules/events/types.ts):
 * one entry per type and no other, each the envelope of its own type.
 */

interface WebhookOperation {
  operationId: string;
  requestBody: {
    content: Record<string, { schema: { $ref: string }; example: { type: string } }>;
  };
}
type Spec = ReturnType<typeof loadSpec> & {
  webhooks: Record<string, { post: WebhookOperation }>;
  components: { schemas: Record<string, { properties: { type: { const: string } } }> };
};

/** The operationIds of the spec's paths, found through the types of `paths`. */
type PathOperationId = {
  [K in keyof operations]: operations[K] extends PathOperation ? K : never;
}[keyof operations];
type PathOperation = {
  [P in keyof paths]: paths[P][Exclude<keyof paths[P], 'parameters'>];
}[keyof paths];

const spec = loadSpec() as Spec;
const allTypes: string[] = [...eventTypes, testEventType];

describe("the spec's webhooks", () => {
  it('declare every event type, and nothing else', () => {
    expect(Object.keys(spec.webhooks).sort()).toEqual([...allTypes].sort());
  });

  it('are typed in generated/api.d.ts under the same names', () => {
    expectTypeOf<keyof webhooks>().toEqualTypeOf<EventType | typeof testEventType>();
  });

  it.each(allTypes)('%s: a POST of the envelope of its own type, with an example of it', (type) => {
    const operation = spec.webhooks[type]!.post;
    expect(operation.operationId).toMatch(/Webhook$/);
    const body = operation.requestBody.content['application/json']!;
    const name = body.schema.$ref.replace('#/components/schemas/', '');
    expect(spec.components.schemas[name]!.properties.type.const).toBe(type);
    expect(body.example.type).toBe(type);
    const check = createWebhookPayloadCheck(spec);
    expect(() => check(type, body.example)).not.toThrow();
    expect(() => check(type, { ...body.example, type: 'something.else' })).toThrow(
      WebhookPayloadError,
    );
  });

  it("are not routes: the handlers' operations are the paths' alone", () => {
    expectTypeOf<OperationId>().toEqualTypeOf<PathOperationId>();
    const pathIds = Object.values(spec.paths).flatMap((item) =>
      Object.values(item).flatMap((operation) =>
        typeof operation === 'object' && operation !== null && 'operationId' in operation
          ? [String(operation.operationId)]
          : [],
      ),
    );
    const webhookIds = Object.values(spec.webhooks).map(({ post }) => post.operationId);
    expect(pathIds.filter((id) => webhookIds.includes(id))).toEqual([]);
  });
});
