// The webhook sending library: what the delivery worker and the endpoints module need.
export { addressRefusal, AddressRefusedError, type AddressRefusal } from './addresses.js';
export {
  createWebhookDispatcher,
  defaultConnectTimeoutMs,
  type WebhookDispatcherOptions,
  type WebhookLookup,
} from './dispatcher.js';
export { retryDelayMs, retryJitter, webhookRetrySchedule } from './retry.js';
export {
  defaultAttemptTimeoutMs,
  responseBodyLimit,
  sendWebhook,
  type SendWebhookOptions,
  type WebhookAttempt,
  type WebhookAttemptResult,
} from './send.js';
export {
  createWebhookSecret,
  isWebhookSecret,
  signWebhook,
  type WebhookMessage,
  type WebhookSignatureHeaders,
} from './signing.js';
