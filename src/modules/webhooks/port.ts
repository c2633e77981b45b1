import type { Db } from '../../db/client.js';
import type { EventsRepository } from '../events/repository.js';
import { testEventType } from '../events/types.js';
import { insertDelivery } from './deliveries-repository.js';
import type { WebhookDelivery } from './delivery.js';
import type { WebhookDeliveriesPort } from './service.js';

const TEST_MESSAGE = 'A test event, sent by an admin (sendWebhookTest).';

/**
 * The admin operations' way to deliveries. A test event is recorded with its one delivery
 * in one transaction, and goes out like any event (the relay queues it, its job queues the
 * attempt): the API needs no queue for it. A redelivery is queued at once.
 */
export function createWebhookDeliveriesPort(parts: {
  db: Db;
  events: EventsRepository;
  delivery: WebhookDelivery;
}): WebhookDeliveriesPort {
  return {
    async redeliver({ id }) {
      await parts.delivery.redeliver(id);
    },
    sendTest(endpointId) {
      return parts.db.transaction(async (tx) => {
        const [event] = await parts.events.record(tx, {
          type: testEventType,
          subjectId: endpointId,
          data: { webhookId: endpointId, message: TEST_MESSAGE },
        });
        if (!event) throw new Error('the test event was not recorded');
        const deliveryId = await insertDelivery(tx, {
          endpointId,
          eventId: event.id,
          eventType: event.type,
        });
        return { eventId: event.id, deliveryId };
      });
    },
  };
}
