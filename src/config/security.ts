import { isIP } from 'node:net';
import { defineArea, durationPattern, parseDuration, type Report } from './area.js';

export interface SecuritySettings {
  /** The origins browsers may call the API from (CORS); empty: none but the API's own. */
  readonly corsOrigins: readonly string[];
  /** Strict-Transport-Security's max-age; undefined: the header is not sent. */
  readonly hstsMaxAgeSeconds: number | undefined;
  /**
   * Which proxies' X-Forwarded-For to believe: false (none), a hop count, or their
   * addresses and CIDR ranges. Never "every address", which lets clients pick their own IP.
   */
  readonly trustProxy: false | number | readonly string[];
}

/** An IP address, or a CIDR range: an address and a prefix length its family allows. */
function isAddressOrRange(entry: string): boolean {
  const [address = '', prefix, ...rest] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^[0-9]{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

/**
 * TRUST_PROXY: `false` (the default: X-Forwarded-For is ignored), a number of proxy hops
 * in front of the server, or a comma-separated list of proxy addresses and CIDR ranges.
 */
function trustProxyOf(text: string, report: Report): SecuritySettings['trustProxy'] {
  const value = text.trim();
  if (value === 'false') return false;
  if (/^[0-9]+$/.test(value)) {
    const hops = Number(value);
    if (hops >= 1 && hops <= 10) return hops;
  } else if (value !== 'true') {
    const entries = value.split(',').map((entry) => entry.trim());
    if (entries.every(isAddressOrRange)) return Object.freeze(entries);
  }
  report.problem(
    ['TRUST_PROXY'],
    `TRUST_PROXY must be false, a number of proxy hops (1 to 10), or the proxies' addresses or CIDR ranges, comma-separated (got ${JSON.stringify(text)}). "true" would trust every address, so any client could choose its own IP.`,
  );
  return false;
}

/**
 * CORS_ORIGINS: origins (`https://app.example.com`, a port when not the default one),
 * comma-separated. Never `*`: a browser page from any site could then read the answers.
 */
function corsOriginsOf(text: string | undefined, report: Report): readonly string[] {
  const origins = text === undefined ? [] : text.split(',').map((entry) => entry.trim());
  const wrong = origins.find((origin) => {
    try {
      const parsed = new URL(origin);
      return !/^https?:$/.test(parsed.protocol) || parsed.origin !== origin;
    } catch {
      return true;
    }
  });
  if (wrong === undefined) return Object.freeze(origins);
  report.problem(
    ['CORS_ORIGINS'],
    `CORS_ORIGINS must list origins such as https://app.example.com (a scheme, a host and a port when not the default one; no path, no trailing slash, no "*"), comma-separated (got ${JSON.stringify(wrong)}).`,
  );
  return Object.freeze([]);
}

export const securityArea = defineArea({
  title: 'Browsers and proxies',
  properties: {
    CORS_ORIGINS: {
      type: 'string',
      minLength: 1,
      description:
        'the origins browser pages may call the API from, comma-separated (`https://app.example.com,http://localhost:5173`); `*` is refused; unset: no CORS headers',
    },
    HSTS_MAX_AGE: {
      type: 'string',
      pattern: durationPattern,
      description:
        'sends `Strict-Transport-Security: max-age=…` (a duration: `180d`, `365d`) when set; set it only when the API is reached over https alone',
    },
    TRUST_PROXY: {
      type: 'string',
      minLength: 1,
      default: 'false',
      description:
        "whose `X-Forwarded-For` to believe for the client IP: `false` (nobody's), the number of proxy hops in front of the API, or the proxies' addresses and CIDR ranges (`10.0.0.1,192.168.0.0/16`); `true` is refused, since it would let any client pick its own IP",
    },
  },
  settings: (values, _context, report): SecuritySettings => ({
    corsOrigins: corsOriginsOf(values.CORS_ORIGINS, report),
    hstsMaxAgeSeconds:
      values.HSTS_MAX_AGE === undefined ? undefined : parseDuration(values.HSTS_MAX_AGE),
    trustProxy: trustProxyOf(values.TRUST_PROXY, report),
  }),
});
