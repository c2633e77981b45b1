import type { Schemas } from '../../api-types.js';
import {
  ForbiddenError,
  InvalidInputError,
  NotFoundError,
  fail,
  ok,
  type Outcome,
} from '../../errors.js';
import { encodeCursor, positionOf, type Position } from '../../lib/cursor.js';
import { createWebhookSecret } from '../../lib/webhooks/index.js';
import type { Principal } from '../../lib/principal.js';
import type { WebhookAdminRepository } from './repository.js';
import type { WebhookDelivery, WebhookEndpoint, WebhookEndpointCreated } from './rows.js';

export type { WebhookDelivery, WebhookEndpoint, WebhookEndpointCreated };
export type WebhookEndpointPage = Schemas['WebhookEndpointPage'];
export type WebhookDeliveryPage = Schemas['WebhookDeliveryPage'];
export type CreateWebhookInput = Schemas['CreateWebhookRequest'];
export type UpdateWebhookInput = Schemas['UpdateWebhookRequest'];
export type WebhookTestAccepted = Schemas['WebhookTestAccepted'];

/** A page request: `limit` and the `cursor` of the previous page. */
export type Page = { limit?: number | undefined; cursor?: string | undefined };

/**
 * What sends deliveries, implemented by the composition with the queue: the admin
 * operations ask it for an attempt, they do not make one.
 */
export interface WebhookDeliveriesPort {
  /** Queues one more attempt of this delivery (of this endpoint), due now. */
  redeliver(delivery: { id: string; endpointId: string }): Promise<void>;
  /** Records a `webhook.test` event for this endpoint alone and queues its delivery. */
  sendTest(endpointId: string): Promise<WebhookTestAccepted>;
}

export interface WebhookAdminService {
  create(
    principal: Principal,
    input: CreateWebhookInput,
  ): Promise<Outcome<WebhookEndpointCreated, ForbiddenError | InvalidInputError>>;
  list(
    principal: Principal,
    page: Page,
  ): Promise<Outcome<WebhookEndpointPage, ForbiddenError | InvalidInputError>>;
  get(principal: Principal, id: string): Promise<Outcome<WebhookEndpoint, AdminLookupError>>;
  update(
    principal: Principal,
    id: string,
    changes: UpdateWebhookInput,
  ): Promise<Outcome<WebhookEndpoint, AdminLookupError | InvalidInputError>>;
  remove(principal: Principal, id: string): Promise<Outcome<undefined, AdminLookupError>>;
  rotateSecret(
    principal: Principal,
    id: string,
  ): Promise<Outcome<WebhookEndpointCreated, AdminLookupError>>;
  listDeliveries(
    principal: Principal,
    id: string,
    page: Page,
  ): Promise<Outcome<WebhookDeliveryPage, AdminLookupError | InvalidInputError>>;
  /** Queues the delivery again and answers it as it is once queued. */
  redeliver(
    principal: Principal,
    id: string,
    deliveryId: string,
  ): Promise<Outcome<WebhookDelivery, AdminLookupError>>;
  sendTest(
    principal: Principal,
    id: string,
  ): Promise<Outcome<WebhookTestAccepted, AdminLookupError>>;
}

type AdminLookupError = ForbiddenError | NotFoundError;

export interface WebhookAdminServiceDeps {
  endpoints: WebhookAdminRepository;
  deliveries: WebhookDeliveriesPort;
  /** Production refuses plain-http endpoints unless `allowHttp`. */
  production: boolean;
  allowHttp: boolean;
  secretRotationGraceSeconds: number;
}

export const DEFAULT_PAGE_SIZE = 20;

/**
 * Why a URL is not one to send events to, or null when it is: absolute http(s), no
 * credentials in it (they would be sent to whoever the URL names and shown in every
 * listing), and https in production unless plain http is allowed.
 */
export function urlProblem(
  url: string,
  rules: { production: boolean; allowHttp: boolean },
): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'must be an absolute URL';
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return 'must be http or https';
  if (parsed.username !== '' || parsed.password !== '') {
    return 'must not hold a user name or password';
  }
  if (parsed.protocol === 'http:' && rules.production && !rules.allowHttp) {
    return 'must be https';
  }
  return null;
}

const isAdmin = (principal: Principal) => principal.role === 'admin';
const adminsOnly = () => new ForbiddenError('Only an admin can do this.');
const endpointNotFound = () => new NotFoundError('Webhook endpoint');

/** The spec says as much (uniqueItems, minItems); the rule holds for every caller. */
function eventsProblem(events: readonly string[]): InvalidInputError | null {
  if (events.length === 0) return new InvalidInputError('events', 'must name an event type');
  if (new Set(events).size !== events.length) {
    return new InvalidInputError('events', 'must not name an event type twice');
  }
  return null;
}

/** Up to `limit` items after the cursor's, newest first, and the next page's cursor. */
async function pageOf<T extends { id: string; createdAt: string }>(
  { limit = DEFAULT_PAGE_SIZE, cursor }: Page,
  read: (limit: number, after: Position | null) => Promise<T[]>,
): Promise<Outcome<{ items: T[]; nextCursor: string | null }, InvalidInputError>> {
  const start = positionOf(cursor);
  if (!start.ok) return start;
  // One extra row tells whether there is a next page without a count query.
  const rows = await read(limit + 1, start.value);
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return ok({
    items,
    nextCursor:
      rows.length > limit && last ? encodeCursor({ at: last.createdAt, id: last.id }) : null,
  });
}

export function createWebhookAdminService(deps: WebhookAdminServiceDeps): WebhookAdminService {
  const { endpoints, deliveries } = deps;
  const checkUrl = (url: string | undefined): InvalidInputError | null => {
    const problem = url === undefined ? null : urlProblem(url, deps);
    return problem ? new InvalidInputError('url', problem, `The URL ${problem}.`) : null;
  };
  /** The endpoint, for an admin; every operation on one starts here. */
  const endpointFor = async (
    principal: Principal,
    id: string,
  ): Promise<Outcome<WebhookEndpoint, AdminLookupError>> => {
    if (!isAdmin(principal)) return fail(adminsOnly());
    const endpoint = await endpoints.findById(id);
    return endpoint ? ok(endpoint) : fail(endpointNotFound());
  };
  return {
    async create(principal, { url, events, description = '' }) {
      if (!isAdmin(principal)) return fail(adminsOnly());
      const invalid = checkUrl(url) ?? eventsProblem(events);
      if (invalid) return fail(invalid);
      const secret = createWebhookSecret();
      const createdBy = principal.userId;
      return ok(
        await endpoints.create({ url, description, eventTypes: events, secret, createdBy }),
      );
    },

    async list(principal, page) {
      if (!isAdmin(principal)) return fail(adminsOnly());
      return pageOf(page, (limit, after) => endpoints.list(limit, after));
    },

    async get(principal, id) {
      return endpointFor(principal, id);
    },

    async update(principal, id, { url, events, description, enabled }) {
      if (!isAdmin(principal)) return fail(adminsOnly());
      const invalid = checkUrl(url) ?? (events ? eventsProblem(events) : null);
      if (invalid) return fail(invalid);
      const changes = { url, description, eventTypes: events, enabled };
      const updated = await endpoints.update(id, changes);
      return updated ? ok(updated) : fail(endpointNotFound());
    },

    async remove(principal, id) {
      if (!isAdmin(principal)) return fail(adminsOnly());
      return (await endpoints.delete(id)) ? ok(undefined) : fail(endpointNotFound());
    },

    async rotateSecret(principal, id) {
      if (!isAdmin(principal)) return fail(adminsOnly());
      const grace = deps.secretRotationGraceSeconds;
      const rotated = await endpoints.rotateSecret(id, createWebhookSecret(), grace);
      return rotated ? ok(rotated) : fail(endpointNotFound());
    },

    async listDeliveries(principal, id, page) {
      const endpoint = await endpointFor(principal, id);
      if (!endpoint.ok) return endpoint;
      return pageOf(page, (limit, after) => endpoints.listDeliveries(id, limit, after));
    },

    async redeliver(principal, id, deliveryId) {
      const endpoint = await endpointFor(principal, id);
      if (!endpoint.ok) return endpoint;
      // A delivery of another endpoint is not found here: ids are not proof of anything.
      const delivery = await endpoints.findDelivery(id, deliveryId);
      if (!delivery) return fail(new NotFoundError('Webhook delivery'));
      await deliveries.redeliver({ id: delivery.id, endpointId: id });
      // As queued: the port may have made it pending again, due now.
      const queued = await endpoints.findDelivery(id, deliveryId);
      return queued ? ok(queued) : fail(new NotFoundError('Webhook delivery'));
    },

    async sendTest(principal, id) {
      const endpoint = await endpointFor(principal, id);
      if (!endpoint.ok) return endpoint;
      return ok(await deliveries.sendTest(id));
    },
  };
}
