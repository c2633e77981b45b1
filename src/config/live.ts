import { defineArea, durationPattern, milliseconds } from './area.js';

export interface LiveSettings {
  /**
   * The WebSocket at GET /api/live (openapi/asyncapi.yaml): its limits. The contract's
   * `x-limits` gives the defaults; a deployment may change them here.
   */
  readonly live: {
    /** Open sockets from one client address at most (TRUST_PROXY decides the address). */
    readonly maxConnectionsPerAddress: number;
    /** Channels one socket may be subscribed to at once. */
    readonly maxSubscriptionsPerConnection: number;
    /** Bytes of frames waiting for a socket that does not read them before it is dropped. */
    readonly sendBufferBytes: number;
    /** How often every socket is pinged; a peer silent since the last ping is cut off. */
    readonly heartbeatIntervalMs: number;
  };
}

export const liveArea = defineArea({
  title: 'Live updates (WebSocket)',
  properties: {
    LIVE_MAX_CONNECTIONS_PER_ADDRESS: {
      type: 'integer',
      minimum: 1,
      maximum: 100000,
      default: 20,
      description:
        "how many sockets one client address may hold open on `/api/live` (one more is closed with `4008`); behind a proxy set `TRUST_PROXY`, or every client has the proxy's address",
    },
    LIVE_MAX_SUBSCRIPTIONS: {
      type: 'integer',
      minimum: 1,
      maximum: 10000,
      default: 100,
      description:
        'how many channels one socket may be subscribed to at once (one more is refused with `RATE_LIMITED`)',
    },
    LIVE_SEND_BUFFER_BYTES: {
      type: 'integer',
      minimum: 16384,
      maximum: 67108864,
      default: 1048576,
      description:
        'how many bytes of frames may wait for a socket that does not read them; past that the client is dropped with `4009` (a slow consumer), never buffered without end',
    },
    LIVE_HEARTBEAT_INTERVAL: {
      type: 'string',
      pattern: durationPattern,
      default: '30s',
      description:
        'how often the server pings every socket; a peer that has not answered by the next ping is cut off',
    },
  },
  settings: (values): LiveSettings => ({
    live: Object.freeze({
      maxConnectionsPerAddress: values.LIVE_MAX_CONNECTIONS_PER_ADDRESS,
      maxSubscriptionsPerConnection: values.LIVE_MAX_SUBSCRIPTIONS,
      sendBufferBytes: values.LIVE_SEND_BUFFER_BYTES,
      heartbeatIntervalMs: milliseconds(values.LIVE_HEARTBEAT_INTERVAL),
    }),
  }),
});
