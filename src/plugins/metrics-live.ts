import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { DropReason, LiveStats } from '../lib/live.js';

export interface LiveMetricsRecorder {
  /** Frames sent to sockets, by message type. */
  liveSent(type: string, count: number): void;
  /** From an event's commit to its frames handed to this instance's sockets, in seconds. */
  liveFanOut(seconds: number): void;
  /** A socket dropped by the server, by why. */
  liveDropped(reason: DropReason): void;
}

/**
 * The WebSocket's metrics: open connections and subscriptions (read at scrape time from
 * the hub), frames sent by type, sockets dropped by reason, and the fan-out latency.
 */
export function registerLiveMetrics(
  registry: Registry,
  source: () => (() => LiveStats) | undefined,
): LiveMetricsRecorder {
  new Gauge({
    name: 'live_connections',
    help: 'Open WebSocket connections on /api/live, by whether they are authenticated.',
    labelNames: ['authenticated'] as const,
    registers: [registry],
    collect() {
      const stats = source()?.();
      this.reset();
      if (!stats) return;
      this.labels('true').set(stats.authenticated);
      this.labels('false').set(stats.connections - stats.authenticated);
    },
  });
  new Gauge({
    name: 'live_subscriptions',
    help: 'Subscriptions of the open sockets, by channel (posts, post: posts/{id}, me).',
    labelNames: ['channel'] as const,
    registers: [registry],
    collect() {
      const stats = source()?.();
      this.reset();
      if (!stats) return;
      for (const [channel, count] of Object.entries(stats.subscriptions))
        this.labels(channel).set(count);
    },
  });
  const sent = new Counter({
    name: 'live_messages_sent_total',
    help: 'Frames sent to WebSocket clients, by message type.',
    labelNames: ['type'] as const,
    registers: [registry],
  });
  const dropped = new Counter({
    name: 'live_connections_dropped_total',
    help: 'Sockets the server dropped, by reason: slow-consumer (its send buffer was full), heartbeat (no answer to a ping), too-many-connections (its address held the limit).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const fanOut = new Histogram({
    name: 'live_fanout_latency_seconds',
    help: "From an event's commit to its frames handed to this instance's sockets, in seconds.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  return {
    liveSent: (type, count) => sent.labels(type).inc(count),
    liveFanOut: (seconds) => fanOut.observe(seconds),
    liveDropped: (reason) => dropped.labels(reason).inc(),
  };
}
