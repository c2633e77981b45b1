import { defineArea, durationPattern, parseDuration } from './area.js';

export interface WebhooksSettings {
  /** Webhook endpoints: which URLs an admin may register, and their secrets' rotation. */
  readonly webhooks: {
    /**
     * Whether deliveries may go to loopback, private and link-local addresses. Off, an
     * endpoint whose name resolves to one is refused at delivery time (SSRF); development
     * and tests that post to a local receiver turn it on.
     */
    readonly allowPrivateNetworks: boolean;
    /** Whether an endpoint may be plain http in production (it always may elsewhere). */
    readonly allowHttp: boolean;
    /** How long a rotated-out secret keeps signing deliveries beside the new one. */
    readonly secretRotationGraceSeconds: number;
    /** Attempts in flight to one endpoint from one process at most. */
    readonly endpointConcurrency: number;
    /** An endpoint failing without a success for this long is disabled (and admins told). */
    readonly disableAfterSeconds: number;
  };
}

export const webhooksArea = defineArea({
  title: 'Webhooks',
  properties: {
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: {
      type: 'boolean',
      default: false,
      description:
        'let deliveries go to loopback, private and link-local addresses (`true`/`false`); off, an endpoint whose host resolves to one is refused when it is called. Turn it on in development and tests that post to a local receiver, never where admins are not the only ones who can reach the network',
    },
    WEBHOOK_ALLOW_HTTP: {
      type: 'boolean',
      default: false,
      description:
        'accept plain `http://` endpoint URLs in production too (`true`/`false`); outside production they are always accepted',
    },
    WEBHOOK_SECRET_ROTATION_GRACE: {
      type: 'string',
      pattern: durationPattern,
      default: '24h',
      description:
        "how long an endpoint's previous secret keeps signing its deliveries after `rotateWebhookSecret` (each delivery then carries both signatures)",
    },
    WEBHOOK_ENDPOINT_CONCURRENCY: {
      type: 'integer',
      minimum: 1,
      maximum: 100,
      default: 4,
      description:
        'how many deliveries one process sends to one endpoint at a time; the others wait their turn without holding up other endpoints',
    },
    WEBHOOK_DISABLE_AFTER: {
      type: 'string',
      pattern: durationPattern,
      default: '5d',
      description:
        'how long an endpoint may fail without a single success before it is disabled and the admins are emailed',
    },
  },
  settings: (values): WebhooksSettings => ({
    webhooks: Object.freeze({
      allowPrivateNetworks: values.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
      allowHttp: values.WEBHOOK_ALLOW_HTTP,
      secretRotationGraceSeconds: parseDuration(values.WEBHOOK_SECRET_ROTATION_GRACE),
      endpointConcurrency: values.WEBHOOK_ENDPOINT_CONCURRENCY,
      disableAfterSeconds: parseDuration(values.WEBHOOK_DISABLE_AFTER),
    }),
  }),
});
