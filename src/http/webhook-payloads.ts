import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import type { OpenApiDocument } from './contract.js';
import { createAjv } from './validation.js';
import { componentRefsToDefs } from './schema-defs.js';

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
    defs ??= componentRefsToDefs(components.schemas ?? {});
    validate = ajv.compile({ ...(componentRefsToDefs(schema) as object), $defs: defs });
    validators.set(type, validate);
    return validate;
  };
  return (type, envelope) => {
    const validate = validatorOf(type);
    if (!validate(envelope)) throw new WebhookPayloadError(type, validate.errors ?? []);
  };
}
