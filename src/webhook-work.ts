import type { FastifyInstance } from 'fastify';
import type { Config } from './config/index.js';
import type { Db } from './db/client.js';
import {
  createWebhookDispatcher,
  retryDelayMs,
  sendWebhook,
  webhookRetrySchedule,
} from './lib/webhooks/index.js';
import { queueNotice } from './modules/email/notices.js';
import { webhookDisabledEmail } from './modules/email/templates.js';
import type { PayloadCheck } from './modules/events/repository.js';
import { activeAdminAddresses } from './modules/users/repository.js';
import type { DeliveriesRepository } from './modules/webhooks/deliveries-repository.js';
import {
  createWebhookDelivery,
  type ScheduleAttempt,
  type WebhookDelivery,
} from './modules/webhooks/delivery.js';

/**
 * How attempts are timed: production's (a 10 s deadline, webhookRetrySchedule, a 2-minute
 * lease) unless a test asks for shorter ones through buildApp's or buildWorker's deps. No
 * setting changes them.
 */
export interface WebhookTiming {
  /** The deadline of one attempt, connection to last byte. */
  attemptTimeoutMs?: number;
  /** The waits before each attempt (the first is the first attempt's: 0). */
  retrySchedule?: readonly number[];
  /** How long a claimed attempt is kept from other workers (see WebhookDeliveryOptions). */
  leaseMs?: number;
}

/**
 * The webhook deliveries of this process: one address-checking HTTP dispatcher (closed
 * with the app), the retry schedule, the per-endpoint limit, metrics, and the admins told
 * by email when an endpoint is disabled for failing. `schedule` puts an attempt on the job
 * queue.
 */
export function createWebhookWork(
  app: FastifyInstance,
  config: Config,
  parts: {
    db: Db;
    deliveries: DeliveriesRepository;
    schedule: ScheduleAttempt;
    check?: PayloadCheck | undefined;
    timing?: WebhookTiming | undefined;
  },
): WebhookDelivery {
  const { webhooks } = config;
  const log = app.log.child({ component: 'webhooks' });
  const dispatcher = createWebhookDispatcher({
    allowPrivateNetworks: webhooks.allowPrivateNetworks,
  });
  app.addHook('onClose', () => dispatcher.close());
  const { attemptTimeoutMs, retrySchedule = webhookRetrySchedule, leaseMs } = parts.timing ?? {};
  return createWebhookDelivery({
    deliveries: parts.deliveries,
    send: (attempt) =>
      sendWebhook(attempt, {
        dispatcher,
        ...(attemptTimeoutMs === undefined ? {} : { timeoutMs: attemptTimeoutMs }),
      }),
    schedule: parts.schedule,
    retryDelayMs: (made) => retryDelayMs(made, Math.random, retrySchedule),
    ...(leaseMs === undefined ? {} : { leaseMs }),
    disableAfterMs: webhooks.disableAfterSeconds * 1000,
    perEndpointConcurrency: webhooks.endpointConcurrency,
    checkBody: parts.check,
    onAttempt: (outcome, durationMs, sinceEventMs) => {
      app.metrics.webhookAttempt(outcome, durationMs / 1000);
      if (outcome === 'succeeded') app.metrics.webhookDelivered(sinceEventMs / 1000);
    },
    onDisabled: async (endpointId, url) => {
      log.error({ webhookId: endpointId, url }, 'webhook endpoint disabled: it kept failing');
      const admins = await activeAdminAddresses(parts.db);
      const message = webhookDisabledEmail(url, endpointId, `${config.email.publicUrl}/docs`);
      await queueNotice(parts.db, admins, { ...message, kind: 'webhook_disabled' });
    },
  });
}
