import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';

/**
 * Steady client traffic against a server process, every request timed, for the fault
 * tests: what each client saw, and when.
 */

export interface Sample {
  readonly operation: string;
  /** performance.now() when the request was sent and when its answer (or failure) came. */
  readonly sentAt: number;
  readonly doneAt: number;
  /** The HTTP status; 0 when there was no answer (see `failure`). */
  readonly status: number;
  readonly contentType: string | null;
  /** The problem's `code`, for an error answer. */
  readonly code: string | undefined;
  /** Why there was no answer (a reset connection, the client's own time limit). */
  readonly failure: string | undefined;
}

export const json = { 'content-type': 'application/json' };

/** Signs up an account (the demo password) on the server at `base`. */
export function signUp(base: string, email: string, username: string): Promise<Response> {
  return fetch(`${base}/api/users`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ email, password: 'correct horse battery staple', username }),
  });
}

/** Signs up an account and gives its id (the test fails unless it is a 201). */
export async function signedUpId(base: string, email: string, username: string): Promise<string> {
  const created = await signUp(base, email, username);
  if (created.status !== 201) throw new Error(`sign-up answered ${created.status}`);
  return ((await created.json()) as { id: string }).id;
}

/** Gives up on a request after this long: longer than any bound the tests assert. */
const CLIENT_LIMIT_MS = 30_000;

export async function timedRequest(
  operation: string,
  url: string,
  init: RequestInit = {},
): Promise<Sample> {
  const sentAt = performance.now();
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(CLIENT_LIMIT_MS) });
    const contentType = response.headers.get('content-type');
    let code: string | undefined;
    if (response.ok) {
      await response.arrayBuffer();
    } else {
      const body = (await response.json().catch(() => ({}))) as { code?: string };
      code = body.code;
    }
    return {
      operation,
      sentAt,
      doneAt: performance.now(),
      status: response.status,
      contentType,
      code,
      failure: undefined,
    };
  } catch (error) {
    const { name, message, cause } = error as Error & { cause?: { code?: string } };
    return {
      operation,
      sentAt,
      doneAt: performance.now(),
      status: 0,
      contentType: null,
      code: undefined,
      failure: `${name}: ${message}${cause?.code ? ` (${cause.code})` : ''}`,
    };
  }
}

/**
 * `perSecond` requests a second, whatever the answers take, cycling through a read of one
 * user (getUser), a page of posts (listPosts) and a sign-up (createUser, a write).
 */
export function steadyTraffic(base: string, userId: string, perSecond: number) {
  const samples: Promise<Sample>[] = [];
  const answered: Sample[] = [];
  let n = 0;
  const next = (): Promise<Sample> => {
    n += 1;
    switch (n % 3) {
      case 0:
        return timedRequest('getUser', `${base}/api/users/${userId}`);
      case 1:
        return timedRequest('listPosts', `${base}/api/posts?limit=10`);
      default: {
        const name = `load_${randomBytes(6).toString('hex')}`;
        return timedRequest('createUser', `${base}/api/users`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify({
            email: `${name}@example.com`,
            password: 'correct horse battery staple',
            username: name,
          }),
        });
      }
    }
  };
  const timer = setInterval(() => {
    const sample = next();
    samples.push(sample);
    void sample.then((s) => answered.push(s));
  }, 1000 / perSecond);
  return {
    /** The samples of the requests answered so far, in the order of their answers. */
    answered: (): readonly Sample[] => answered,
    /** Stops sending, and resolves with every request's sample once all are answered. */
    stop: async (): Promise<Sample[]> => {
      clearInterval(timer);
      return Promise.all(samples);
    },
  };
}

export const succeeded = (sample: Sample) => sample.status >= 200 && sample.status < 300;

export const latency = (sample: Sample) => sample.doneAt - sample.sentAt;

/** A line per sample, for failure messages. */
export function describeSamples(samples: readonly Sample[], origin: number): string {
  return samples
    .map(
      (s) =>
        `${(s.sentAt - origin).toFixed(0)}ms +${latency(s).toFixed(0)}ms ${s.operation} ` +
        `${s.status}${s.code ? ` ${s.code}` : ''}${s.failure ? ` ${s.failure}` : ''}`,
    )
    .join('\n');
}
