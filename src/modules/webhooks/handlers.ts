import type { HandlerGroup } from '../../http/handler-types.js';
import { requirePrincipal } from '../../http/security.js';
import type { WebhookAdminService } from './service.js';

export type WebhookAdminOperations =
  | 'createWebhook'
  | 'listWebhooks'
  | 'getWebhook'
  | 'updateWebhook'
  | 'deleteWebhook'
  | 'rotateWebhookSecret'
  | 'listWebhookDeliveries'
  | 'redeliverWebhookDelivery'
  | 'sendWebhookTest';

export function createWebhookAdminHandlers(
  service: WebhookAdminService,
): HandlerGroup<WebhookAdminOperations> {
  return {
    async createWebhook({ body, principal, reply, refuse }) {
      const created = await service.create(requirePrincipal(principal), body);
      if (!created.ok) return refuse(created.error);
      return reply(201, created.value, { Location: `/api/webhooks/${created.value.id}` });
    },
    async listWebhooks({ query, principal, respond }) {
      return respond(200, await service.list(requirePrincipal(principal), query));
    },
    async getWebhook({ params, principal, respond }) {
      return respond(200, await service.get(requirePrincipal(principal), params.webhookId));
    },
    async updateWebhook({ params, body, principal, respond }) {
      const updated = await service.update(requirePrincipal(principal), params.webhookId, body);
      return respond(200, updated);
    },
    async deleteWebhook({ params, principal, respond }) {
      return respond(204, await service.remove(requirePrincipal(principal), params.webhookId));
    },
    async rotateWebhookSecret({ params, principal, respond }) {
      const rotated = await service.rotateSecret(requirePrincipal(principal), params.webhookId);
      return respond(200, rotated);
    },
    async listWebhookDeliveries({ params, query, principal, respond }) {
      const page = await service.listDeliveries(
        requirePrincipal(principal),
        params.webhookId,
        query,
      );
      return respond(200, page);
    },
    async redeliverWebhookDelivery({ params, principal, respond }) {
      const { webhookId, deliveryId } = params;
      const queued = await service.redeliver(requirePrincipal(principal), webhookId, deliveryId);
      return respond(202, queued);
    },
    async sendWebhookTest({ params, principal, respond }) {
      return respond(202, await service.sendTest(requirePrincipal(principal), params.webhookId));
    },
  };
}
