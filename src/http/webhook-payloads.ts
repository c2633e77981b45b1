import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import type { OpenApiDocument } from './contract.js';
import { createAjv } from './validation.js';

/**
 * Checks a webhook's envelope (`{ type, timestamp, data }`) against the spec's `webhooks:`
 * entry of its type; throws a WebhookPayloadError when it breaks the contract.
 */
export type WebhookPayloadCheck = (type: string, envelope: unknown) => void;

export class WebhookPayloadError extends Error {
  constructor(
    readonly type: string,
    readonly errors: ErrorObject[],
  ) {
    const details = errors.map((error) => `${error.instancePath || '/'} ${error.message ?? ''}`);
    super(`The payload of ${type} breaks the spec's webhooks: ${details.join('; ')}`);
    this.name = 'WebhookPayloadError';
  }
}

interface WebhookOperation {
  post?: { requestBody?: { content?: Record<string, { schema?: object }> } };
}

type WebhookSpec = OpenApiDocument & {
  webhooks?: Record<string, WebhookOperation>;
  components?: { schemas?: Record<string, object> };
};

const componentRef = '#/components/schemas/';

/**
 * The spec's schemas with their `$ref`s pointed at `$defs`, where JSON Schema looks for
 * them: the bundled spec keeps internal `$ref`s (`#/components/schemas/Post`), which mean
 * nothing inside a schema of their own.
 */
function toDefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toDefs);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [
      key,
      key === '$ref' && typeof item === 'string' && item.startsWith(componentRef)
        ? `#/$defs/${item.slice(componentRef.length)}`
        : toDefs(item),
    ]),
  );
}

/**
 * The check of outgoing webhook payloads, for development and tests (as response
 * validation is): each type's validator is compiled at its first payload, so a server
 * that sends none pays nothing for it.
 */
export function createWebhookPayloadCheck(spec: OpenApiDocument): WebhookPayloadCheck {
  const { webhooks = {}, components = {} } = spec as WebhookSpec;
  const ajv = createAjv({ coerceTypes: false });
  let defs: unknown;
  const validators = new Map<string, ValidateFunction>();
  const validatorOf = (type: string): ValidateFunction => {
    let validate = validators.get(type);
    if (validate) return validate;
    const schema = webhooks[type]?.post?.requestBody?.content?.['application/json']?.schema;
    if (!schema)
      throw new Error(`The spec's webhooks: declare no ${type} (or no JSON body for it).`);
    defs ??= toDefs(components.schemas ?? {});
    validate = ajv.compile({ ...(toDefs(schema) as object), $defs: defs });
    validators.set(type, validate);
    return validate;
  };
  return (type, envelope) => {
    const validate = validatorOf(type);
    if (!validate(envelope)) throw new WebhookPayloadError(type, validate.errors ?? []);
  };
}
