import { promises as dns, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { AddressRefusedError, addressRefusal } from './addresses.js';

/** Every address a host name resolves to (as `dns.lookup` with `all: true` answers). */
export type WebhookLookup = (hostname: string) => Promise<readonly LookupAddress[]>;

export interface WebhookDispatcherOptions {
  /** Lets webhooks reach loopback and private networks: for development and tests only. */
  allowPrivateNetworks?: boolean;
  /** How long a TCP (and TLS) connection may take to open. Default 5 s. */
  connectTimeoutMs?: number;
  /** Resolves host names; the system resolver by default. Tests inject their own. */
  lookup?: WebhookLookup;
}

export const defaultConnectTimeoutMs = 5_000;

const systemLookup: WebhookLookup = (hostname) => dns.lookup(hostname, { all: true });

function wantedFamily(options: LookupOptions): 4 | 6 | undefined {
  const { family } = options;
  if (family === 4 || family === 'IPv4') return 4;
  if (family === 6 || family === 'IPv6') return 6;
  return undefined;
}

/**
 * A `lookup` for `net.connect` that refuses the host when any of its addresses is refused,
 * and otherwise hands the socket those same addresses: the address checked is the address
 * connected to, so a DNS answer that changes between a check and the connection (DNS
 * rebinding) cannot slip through.
 */
function checkedLookup(resolve: WebhookLookup, allowPrivateNetworks: boolean): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname).then(
      (found) => {
        for (const { address } of allowPrivateNetworks ? [] : found) {
          const refusal = addressRefusal(address);
          if (refusal) return callback(new AddressRefusedError(hostname, address, refusal), '');
        }
        const family = wantedFamily(options);
        const usable = found.filter((entry) => family === undefined || entry.family === family);
        const [first] = usable;
        if (!first) {
          const error: NodeJS.ErrnoException = new Error(`host ${hostname} not found`);
          error.code = 'ENOTFOUND';
          return callback(error, '');
        }
        if (options.all)
          return callback(
            null,
            usable.map((entry) => ({ ...entry })),
          );
        return callback(null, first.address, first.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, ''),
    );
  };
}

/**
 * The HTTP client for webhook attempts: one per process (it pools connections), closed on
 * shutdown with `await dispatcher.close()`. Unless `allowPrivateNetworks` is set, it
 * connects only to public addresses. A host name is checked in the socket's own lookup;
 * an IP literal in the URL is checked before connecting, because Node does not call
 * `lookup` for those.
 */
export function createWebhookDispatcher(options: WebhookDispatcherOptions = {}): Agent {
  const allowPrivateNetworks = options.allowPrivateNetworks ?? false;
  const connect = buildConnector({
    timeout: options.connectTimeoutMs ?? defaultConnectTimeoutMs,
    lookup: checkedLookup(options.lookup ?? systemLookup, allowPrivateNetworks),
  });
  return new Agent({
    connect: (connectOptions, callback) => {
      const host = connectOptions.hostname;
      const refusal = !allowPrivateNetworks && isIP(host) ? addressRefusal(host) : undefined;
      if (refusal) return callback(new AddressRefusedError(host, host, refusal), null);
      return connect(connectOptions, callback);
    },
  });
}
