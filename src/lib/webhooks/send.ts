import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { describeError, describeStatus } from './failures.js';
import { signWebhook } from './signing.js';

/** One attempt to deliver one message to one endpoint. */
export interface WebhookAttempt {
  /** The endpoint: http or https. */
  url: string;
  /** The message id (`webhook-id`): the same on every attempt of one message. */
  id: string;
  /** The JSON text to send, exactly as signed. */
  body: string;
  /** The endpoint's signing secrets: the current one, and the previous while rotating. */
  secrets: readonly string[];
}

export interface SendWebhookOptions {
  /** From createWebhookDispatcher: decides which addresses may be reached. */
  dispatcher: Dispatcher;
  /** The deadline of the whole attempt, connection to last byte read. Default 10 s. */
  timeoutMs?: number;
  /** The clock that stamps `webhook-timestamp`. */
  now?: () => Date;
  userAgent?: string;
}

export type WebhookAttemptResult =
  | { ok: true; status: number; body: string; durationMs: number }
  | { ok: false; status?: number; body?: string; durationMs: number; error: string };

export const defaultAttemptTimeoutMs = 10_000;
/** How much of a response body is kept, in characters: enough to show an endpoint's error. */
export const responseBodyLimit = 1024;
const defaultUserAgent = 'webhooks (Standard Webhooks 1.0)';

/**
 * Makes one signed attempt: POSTs `attempt.body` to `attempt.url` and says how it went.
 * Never throws: a refused address, a bad secret, a timeout or a network error come back as
 * `{ ok: false, error }` with a short text for people. Only a 2xx is a success; a redirect
 * is not followed (the endpoint's owner must register the final URL).
 */
export async function sendWebhook(
  attempt: WebhookAttempt,
  options: SendWebhookOptions,
): Promise<WebhookAttemptResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const timeoutMs = options.timeoutMs ?? defaultAttemptTimeoutMs;
  const signal = AbortSignal.timeout(timeoutMs);
  let status: number | undefined;
  let host = attempt.url;
  try {
    const url = endpointUrl(attempt.url);
    host = url.host;
    const timestamp = (options.now ?? (() => new Date()))();
    const response = await request(url, {
      method: 'POST',
      dispatcher: options.dispatcher,
      signal,
      body: attempt.body,
      headers: {
        ...signWebhook({ id: attempt.id, body: attempt.body, timestamp }, attempt.secrets),
        'content-type': 'application/json',
        'user-agent': options.userAgent ?? defaultUserAgent,
      },
    });
    status = response.statusCode;
    const body = await readStart(response.body, responseBodyLimit);
    const durationMs = elapsed();
    if (status >= 200 && status < 300) return { ok: true, status, body, durationMs };
    const location = response.headers.location;
    const error = describeStatus(status, typeof location === 'string' ? location : undefined);
    return { ok: false, status, body, durationMs, error };
  } catch (error) {
    const timedOut = signal.aborted ? { timeoutMs, status } : undefined;
    return {
      ok: false,
      ...(status !== undefined && { status }),
      durationMs: elapsed(),
      error: describeError(error, host, timedOut),
    };
  }
}

function endpointUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error('the endpoint URL is not a valid URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new Error(`the endpoint URL must be http or https, not ${url.protocol.slice(0, -1)}`);
  }
  return url;
}

/**
 * The first `limit` characters of a body as text, reading no further than needed: an
 * endpoint may answer with megabytes, and only the start is worth keeping. NUL characters
 * become U+FFFD, since PostgreSQL text cannot hold them.
 */
async function readStart(body: Readable, limit: number): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of body) {
    text += decoder.decode(chunk as Uint8Array, { stream: true });
    if (text.length >= limit) break;
  }
  if (text.length < limit) text += decoder.decode();
  let start = text.slice(0, limit);
  // Cutting between the halves of a surrogate pair would leave a lone half.
  if (/[\uD800-\uDBFF]$/.test(start)) start = start.slice(0, -1);
  return start.replaceAll('\u0000', '\uFFFD');
}
