import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Config } from './config/index.js';
import type { Repositories, Services } from './composition.js';
import type { Database } from './db/client.js';
import { createLiveContract, type LiveDocument } from './http/live-messages.js';
import { openLiveBus, type LiveBus } from './live-bus.js';
import { createTokenAuthenticator } from './modules/auth/service.js';
import { readEvents } from './modules/events/outbox.js';
import { createLiveSockets } from './modules/live/handlers.js';
import { createLiveHub, type LiveHub } from './modules/live/service.js';
import type { BackgroundTask } from './plugins/background.js';
import type { live } from './plugins/live.js';
import { loadAsyncApi } from './spec.js';

/** How often the open sockets' sessions are looked at: a session's end closes its socket within a second. */
const SESSION_CHECK_MS = 500;

/**
 * The live updates of one API instance (GET /api/live, openapi/asyncapi.yaml): the hub,
 * the socket adapter, and the bus the relay announces committed events on. The bus is
 * listened to once the app is ready (a task: the events table must be migrated).
 */
export async function openLive(
  app: FastifyInstance,
  config: Config,
  parts: { database: Database; repositories: Repositories; services: Services },
): Promise<{
  hub: LiveHub;
  bus: LiveBus;
  task: BackgroundTask;
  plugin: Parameters<typeof live>[1];
  /** The contract, as /docs/live renders it. */
  document: LiveDocument;
}> {
  const { database, repositories, services } = parts;
  const log = app.log.child({ component: 'live' });
  const document = loadAsyncApi();
  const contract = createLiveContract(document);
  const bus = await openLiveBus(config, database, log);
  app.addHook('onClose', () => bus.close());
  const limits = contract.limits;
  const hub = createLiveHub({
    posts: services.posts,
    authenticate: createTokenAuthenticator({
      tokens: services.tokens,
      sessions: repositories.sessions,
    }),
    checkSessions: (pairs) => repositories.sessions.checkMany(pairs),
    revokedSince: (users, since) => repositories.sessions.revokedSince(users, since),
    readEvents: (ids) => readEvents(database.db, ids),
    checkMessage: config.responseValidation
      ? (message) => contract.checkServerMessage(message)
      : undefined,
    limits: {
      maxConnectionsPerAddress: config.live.maxConnectionsPerAddress,
      maxSubscriptionsPerConnection: config.live.maxSubscriptionsPerConnection,
      maxPendingMessages: limits.maxPendingMessages,
      sessionCheckIntervalMs: SESSION_CHECK_MS,
      viewCountIntervalMs: limits.viewCountIntervalSeconds * 1000,
    },
    closeCodes: contract.closeCodes,
    metrics: {
      sent: (type, count) => app.metrics.liveSent(type, count),
      fanOut: (seconds) => app.metrics.liveFanOut(seconds),
    },
    log,
  });
  const sockets = createLiveSockets({
    hub,
    contract,
    settings: {
      sendBufferBytes: config.live.sendBufferBytes,
      heartbeatIntervalMs: config.live.heartbeatIntervalMs,
      closeTimeoutMs: Math.min(config.shutdownTimeoutMs, 5000),
      checkMessages: config.responseValidation,
    },
    log,
    onDrop: (reason) => app.metrics.liveDropped(reason),
    onSent: (type) => app.metrics.liveSent(type, 1),
  });
  const task = listening(bus, hub, log);
  return {
    hub,
    bus,
    task,
    plugin: { sockets, maxMessageBytes: limits.maxMessageBytes },
    document,
  };
}

/** The task that listens to the bus once the app is ready, and hands what comes to the hub. */
function listening(bus: LiveBus, hub: LiveHub, log: FastifyBaseLogger): BackgroundTask {
  return {
    name: 'live updates',
    start() {
      bus.subscribe(({ events }) => {
        hub.announce(events).catch((error: unknown) => {
          const message = error instanceof Error ? error.message : String(error);
          log.warn({ message }, 'live updates: could not read announced events');
        });
      });
      return () => undefined;
    },
  };
}
