import { sql } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import type { Config } from './config/index.js';
import type { Database } from './db/client.js';
import { listen, type Listener } from './db/notifications.js';

/**
 * How the WebSocket's events reach every API instance: the relay (wherever the jobs run)
 * publishes the ids of the events it has just relayed, and each instance's live hub reads
 * them from the events table and sends them to its sockets. On Redis pub/sub with
 * REDIS_URL, on PostgreSQL's LISTEN/NOTIFY without it.
 *
 * Ids only, not the events: a NOTIFY payload is at most 8,000 bytes and a post's event may
 * be larger; each instance reads the batch in one statement. Delivery is at most once, as
 * pub/sub is: a message published while an instance's subscription is down is lost to it
 * (a socket's client reads the state again when it reconnects; openapi/asyncapi.yaml).
 */
export interface LiveBusMessage {
  /** Event ids (the events table's), in the order they were recorded. */
  events: string[];
}

export interface LiveBus {
  readonly kind: 'redis' | 'postgres';
  /** Publishes; rejects when the bus does not take it (the caller logs, nothing retries). */
  publish(message: LiveBusMessage): Promise<void>;
  /** Starts receiving (one subscriber per bus): it opens its own connection, kept open. */
  subscribe(onMessage: (message: LiveBusMessage) => void): void;
  close(): Promise<void>;
}

/** A plain identifier: it is written into a LISTEN statement. */
export const LIVE_CHANNEL = 'live_events';

/** At most this many ids per message (36 bytes each: well under NOTIFY's 8,000). */
const IDS_PER_MESSAGE = 150;

function chunks(message: LiveBusMessage): LiveBusMessage[] {
  const out: LiveBusMessage[] = [];
  for (let i = 0; i < message.events.length; i += IDS_PER_MESSAGE)
    out.push({ events: message.events.slice(i, i + IDS_PER_MESSAGE) });
  return out;
}

function parse(payload: string | undefined): LiveBusMessage | undefined {
  if (!payload) return undefined;
  try {
    const value = JSON.parse(payload) as Partial<LiveBusMessage>;
    if (Array.isArray(value.events) && value.events.every((id) => typeof id === 'string'))
      return { events: value.events };
  } catch {
    // Not ours: ignored.
  }
  return undefined;
}

interface BusLog {
  warn(facts: Record<string, unknown>, message: string): void;
  info(message: string): void;
}

export function postgresLiveBus(database: Database, log: BusLog): LiveBus {
  let listener: Listener | undefined;
  return {
    kind: 'postgres',
    async publish(message) {
      for (const chunk of chunks(message)) {
        await database.db.execute(sql`select pg_notify(${LIVE_CHANNEL}, ${JSON.stringify(chunk)})`);
      }
    },
    subscribe(onMessage) {
      if (listener) throw new Error('The live bus has a subscriber already.');
      listener = listen({
        connection: database.connection,
        channel: LIVE_CHANNEL,
        onNotify: (payload) => {
          const message = parse(payload);
          if (message) onMessage(message);
        },
        onLost: (error) =>
          log.warn(
            { message: error.message },
            "live updates: lost the database's LISTEN connection; events are missed until it is back",
          ),
        onBack: () => log.info('live updates: listening again'),
      });
    },
    async close() {
      await listener?.close();
    },
  };
}

export async function redisLiveBus(url: string, keyPrefix: string, log: BusLog): Promise<LiveBus> {
  const { Redis } = await import('ioredis');
  const channel = `${keyPrefix}live:events`;
  // The publisher fails fast while Redis is down (the relay logs it); the subscriber
  // reconnects and subscribes again by itself (ioredis).
  const options = {
    lazyConnect: true,
    connectTimeout: 1000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: (attempt: number) => Math.min(attempt * 200, 2000),
  };
  let publisher: Redis | undefined;
  let subscriber: Redis | undefined;
  const quiet = (client: Redis, role: string) => {
    let down = false;
    client.on('error', (error: Error) => {
      if (down) return;
      down = true;
      log.warn({ message: error.message, role }, 'live updates: Redis is unreachable');
    });
    client.on('ready', () => {
      if (!down) return;
      down = false;
      log.info(`live updates: Redis ${role} is back`);
    });
  };
  const publisherOf = async () => {
    if (!publisher) {
      publisher = new Redis(url, options);
      quiet(publisher, 'publisher');
    }
    if (publisher.status === 'wait') await publisher.connect();
    return publisher;
  };
  return {
    kind: 'redis',
    async publish(message) {
      const client = await publisherOf();
      for (const chunk of chunks(message)) await client.publish(channel, JSON.stringify(chunk));
    },
    subscribe(onMessage) {
      if (subscriber) throw new Error('The live bus has a subscriber already.');
      const client = new Redis(url, {
        ...options,
        enableOfflineQueue: true,
        maxRetriesPerRequest: null,
      });
      subscriber = client;
      quiet(client, 'subscriber');
      client.on('message', (_channel: string, payload: string) => {
        const message = parse(payload);
        if (message) onMessage(message);
      });
      void client.subscribe(channel).catch(() => undefined);
    },
    async close() {
      for (const client of [publisher, subscriber]) {
        if (client?.status === 'ready') await client.quit().catch(() => client.disconnect());
        else client?.disconnect();
      }
    },
  };
}

/** Redis pub/sub with REDIS_URL, else the app's PostgreSQL. */
export function openLiveBus(config: Config, database: Database, log: BusLog): Promise<LiveBus> {
  return config.redis
    ? redisLiveBus(config.redis.url, config.redis.keyPrefix, log)
    : Promise.resolve(postgresLiveBus(database, log));
}

/**
 * What the relay calls with each batch it takes: the batch's ids on the bus, not
 * waited for; a failure is logged once per outage (the sockets miss those events).
 */
export function livePublisher(
  bus: LiveBus,
  log: BusLog,
): (events: readonly { id: string }[]) => void {
  let failing = false;
  return (events) => {
    bus.publish({ events: events.map((event) => event.id) }).then(
      () => {
        if (!failing) return;
        failing = false;
        log.info('live updates: events are published again');
      },
      (error: unknown) => {
        if (failing) return;
        failing = true;
        log.warn(
          { message: error instanceof Error ? error.message : String(error) },
          'live updates: could not publish events; sockets miss them until the bus is back',
        );
      },
    );
  };
}
