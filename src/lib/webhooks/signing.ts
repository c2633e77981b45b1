import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

/** The headers of the Standard Webhooks specification that sign one message. */
export interface WebhookSignatureHeaders {
  /** The message id: the same on every attempt, so a receiver can drop duplicates. */
  'webhook-id': string;
  /** Seconds since the epoch, at this attempt: receivers refuse stale ones (replays). */
  'webhook-timestamp': string;
  /** `v1,<base64>` per secret, space-separated while a secret is being rotated. */
  'webhook-signature': string;
}

export interface WebhookMessage {
  id: string;
  /** The exact bytes sent as the body: a receiver verifies the signature over these. */
  body: string;
  timestamp: Date;
}

const secretPrefix = 'whsec_';
const secretBytes = { min: 24, max: 64, generated: 32 };
const base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Whether `value` is a secret this library can sign with: `whsec_` + base64 of 24–64 bytes. */
export function isWebhookSecret(value: string): boolean {
  if (!value.startsWith(secretPrefix)) return false;
  const encoded = value.slice(secretPrefix.length);
  if (!base64.test(encoded)) return false;
  const length = Buffer.from(encoded, 'base64').length;
  return length >= secretBytes.min && length <= secretBytes.max;
}

/** A new random signing secret for an endpoint. */
export function createWebhookSecret(): string {
  return secretPrefix + randomBytes(secretBytes.generated).toString('base64');
}

/**
 * Signs `message` with each of `secrets` (the current one, plus the previous one while a
 * rotation is under way, so receivers holding either can verify). Throws a TypeError when
 * there is no secret or one is malformed: a message must never leave unsigned.
 */
export function signWebhook(
  message: WebhookMessage,
  secrets: readonly string[],
): WebhookSignatureHeaders {
  if (secrets.length === 0) throw new TypeError('a webhook needs at least one signing secret');
  if (!secrets.every(isWebhookSecret)) {
    throw new TypeError('a webhook signing secret is not whsec_ + base64 of 24 to 64 bytes');
  }
  const signatures = secrets.map((secret) =>
    new Webhook(secret).sign(message.id, message.timestamp, message.body),
  );
  return {
    'webhook-id': message.id,
    'webhook-timestamp': String(Math.floor(message.timestamp.getTime() / 1000)),
    'webhook-signature': signatures.join(' '),
  };
}
