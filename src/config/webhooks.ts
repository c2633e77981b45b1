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
  },
  settings: (values): WebhooksSettings => ({
    webhooks: Object.freeze({
      allowPrivateNetworks: values.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
      allowHttp: values.WEBHOOK_ALLOW_HTTP,
      secretRotationGraceSeconds: parseDuration(values.WEBHOOK_SECRET_ROTATION_GRACE),
    }),
  }),
});
