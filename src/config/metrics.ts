import { defineArea } from './area.js';

export interface MetricsSettings {
  /**
   * Metrics in the Prometheus format (src/plugins/metrics.ts), served on a port of their own
   * (METRICS_PORT, bound to METRICS_HOST, outside the API: no token), and/or on the API's
   * port as GET /metrics to a scraper that sends `Authorization: Bearer <METRICS_TOKEN>`.
   * With neither set nothing is measured and /metrics answers 404.
   */
  readonly metrics: {
    readonly port: number | undefined;
    /** 127.0.0.1 by default; 0.0.0.0 where the scraper comes from outside (a pod's IP). */
    readonly host: string;
    readonly token: string | undefined;
  };
}

export const metricsArea = defineArea({
  title: 'Metrics',
  properties: {
    METRICS_PORT: {
      type: 'integer',
      minimum: 0,
      maximum: 65535,
      description:
        'serve the metrics (Prometheus format) on a listener of their own: `GET /metrics` only, no token, outside the API and its spec',
    },
    METRICS_HOST: {
      type: 'string',
      minLength: 1,
      // No schema default: METRICS_HOST without METRICS_PORT is a mistake to report.
      'x-default': '`127.0.0.1`',
      description:
        "the address of `METRICS_PORT`'s listener; in Kubernetes set `METRICS_HOST=0.0.0.0` (Prometheus scrapes the pod's IP)",
    },
    // Characters a bearer token may have (RFC 6750's b64token), and long enough not to guess.
    METRICS_TOKEN: {
      type: 'string',
      minLength: 32,
      maxLength: 512,
      pattern: '^[A-Za-z0-9._~+/-]+=*$',
      description:
        "serve the metrics on the API's port as `GET /metrics` (`getMetrics`), to a scraper sending `Authorization: Bearer <token>` (32 to 512 characters); others get 401. With neither this nor `METRICS_PORT`, nothing is measured and `/metrics` is a 404",
    },
  },
  settings: (values, context, report): MetricsSettings => {
    if (values.METRICS_PORT === undefined && values.METRICS_HOST !== undefined) {
      report.problem(['METRICS_HOST'], 'METRICS_HOST needs METRICS_PORT.');
    }
    // 0 asks the system for a free port, which cannot be the API's.
    if (values.METRICS_PORT !== undefined && values.METRICS_PORT !== 0) {
      if (values.METRICS_PORT === context.port) {
        report.problem(
          ['METRICS_PORT', 'PORT'],
          "METRICS_PORT must differ from PORT (the metrics listener is a server of its own; METRICS_TOKEN serves them on the API's port).",
        );
      }
    }
    return {
      metrics: Object.freeze({
        port: values.METRICS_PORT,
        host: values.METRICS_HOST ?? '127.0.0.1',
        token: values.METRICS_TOKEN,
      }),
    };
  },
});
