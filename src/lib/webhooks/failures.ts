import { STATUS_CODES } from 'node:http';
import { AddressRefusedError } from './addresses.js';

// The texts here end up in the delivery log an endpoint's owner reads: one short line that
// says what went wrong on the wire, never a stack or our internals.
const maxLength = 200;

function statusText(status: number): string {
  const reason = STATUS_CODES[status];
  return reason ? `${status} ${reason}` : String(status);
}

/** Why a response with a status other than 2xx is a failed attempt. */
export function describeStatus(status: number, location: string | undefined): string {
  if (status >= 300 && status < 400) {
    const target = location ? ` to ${location}` : '';
    return short(
      `the endpoint answered ${statusText(status)}${target}; redirects are not followed`,
    );
  }
  return `the endpoint answered ${statusText(status)}`;
}

/** The code of a network error, looking inside the AggregateError of a dual-stack connect. */
function codeOf(error: unknown): string | undefined {
  if (error instanceof AggregateError) return codeOf(error.errors[0]);
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') {
    return error.code;
  }
  return undefined;
}

const byCode: Record<string, (host: string) => string> = {
  ECONNREFUSED: (host) => `connection refused by ${host}`,
  ECONNRESET: (host) => `connection reset by ${host}`,
  EHOSTUNREACH: (host) => `${host} is unreachable`,
  ENETUNREACH: (host) => `no network route to ${host}`,
  ENOTFOUND: (host) => `host ${hostname(host)} not found`,
  EAI_AGAIN: (host) => `could not resolve ${hostname(host)} (DNS temporarily failing)`,
  UND_ERR_CONNECT_TIMEOUT: (host) => `could not connect to ${host} in time`,
  UND_ERR_SOCKET: (host) => `${host} closed the connection before answering`,
  ETIMEDOUT: (host) => `connection to ${host} timed out`,
};

function hostname(host: string): string {
  return host.replace(/:\d+$/, '');
}

/**
 * Why an attempt that got no usable response failed. `host` is the URL's host (and port);
 * `timedOut` says the attempt's own deadline of `timeoutMs` passed.
 */
export function describeError(
  error: unknown,
  host: string,
  timedOut: { timeoutMs: number; status?: number } | undefined,
): string {
  if (timedOut) {
    return timedOut.status === undefined
      ? `no response within ${timedOut.timeoutMs} ms`
      : `the response body did not finish within ${timedOut.timeoutMs} ms`;
  }
  if (error instanceof AddressRefusedError) return error.message;
  const code = codeOf(error);
  const known = code === undefined ? undefined : byCode[code];
  if (known) return known(host);
  if (code?.startsWith('ERR_TLS') || code?.includes('CERT') || code?.includes('SSL')) {
    return short(`TLS failed with ${host}: ${messageOf(error)}`);
  }
  return short(messageOf(error));
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

function short(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > maxLength ? `${line.slice(0, maxLength - 1)}…` : line;
}
