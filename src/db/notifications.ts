import pg from 'pg';
import type { DatabaseConnection } from './client.js';

/**
 * A LISTEN on one channel of the database, on a connection of its own, kept open: when it
 * drops (a restart, a network cut) it is opened again, 1 s, 2 s, … up to 30 s apart, and
 * `onNotify` is called once it is back, since notifications sent meanwhile are lost.
 *
 * Written here rather than taken from pg-listen (last release 2020): all it takes is
 * node-postgres' own Client, LISTEN, and a reconnect.
 */
export interface Listener {
  close(): Promise<void>;
}

export interface ListenOptions {
  connection: DatabaseConnection;
  /** A plain identifier (letters, digits, `_`): it is written into the LISTEN statement. */
  channel: string;
  /**
   * A notification's payload; called without one once the connection is back after an
   * outage (whatever was notified meanwhile is lost: look again).
   */
  onNotify: (payload?: string) => void;
  /** Told once per outage, and when it is over. */
  onLost?: (error: Error) => void;
  onBack?: () => void;
}

const MAX_RETRY_MS = 30_000;

export function listen(options: ListenOptions): Listener {
  if (!/^[a-z_][a-z0-9_]*$/.test(options.channel)) {
    throw new TypeError(`channel ${JSON.stringify(options.channel)}: a plain identifier`);
  }
  let client: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let failures = 0;

  const retry = (error: Error) => {
    client = undefined;
    if (closed) return;
    if (failures === 0) options.onLost?.(error);
    failures += 1;
    timer = setTimeout(() => void open(), Math.min(1000 * 2 ** (failures - 1), MAX_RETRY_MS));
    timer.unref();
  };

  async function open() {
    const opened = new pg.Client({ ...options.connection, keepAlive: true });
    client = opened;
    let lost = false;
    const drop = (error: Error) => {
      if (lost) return;
      lost = true;
      void opened.end().catch(() => undefined);
      retry(error);
    };
    opened.on('error', drop);
    opened.on('end', () => drop(new Error('the connection ended')));
    opened.on('notification', (message) => options.onNotify(message.payload));
    try {
      await opened.connect();
      await opened.query(`LISTEN ${options.channel}`);
    } catch (error) {
      drop(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    if (closed) {
      await opened.end().catch(() => undefined);
      return;
    }
    if (failures > 0) {
      failures = 0;
      options.onBack?.();
      // Whatever was notified while the connection was down.
      options.onNotify();
    }
  }

  void open();
  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      const open = client;
      client = undefined;
      await open?.end().catch(() => undefined);
    },
  };
}
