import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/** A request as a webhook receiver saw it. */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Answers one received request; the default answers 204. */
export type Respond = (request: ReceivedRequest, response: ServerResponse) => void;

/** An HTTP server in the test process that records what webhooks bring it. */
export interface WebhookReceiver {
  /** http://127.0.0.1:<port>/hooks */
  url: string;
  port: number;
  /** The host it listens on: '::' (both IPv4 and IPv6) where the machine has IPv6. */
  host: string;
  requests: ReceivedRequest[];
  /** TCP connections accepted, whether or not a request followed. */
  connections: () => number;
  /** The next request (or the first one already received and not yet taken). */
  nextRequest: () => Promise<ReceivedRequest>;
  close: () => Promise<void>;
}

const noContent: Respond = (_request, response) => {
  response.writeHead(204).end();
};

/**
 * Starts a receiver. `dualStack` listens on '::' so that the IPv6 spellings of loopback
 * reach it too (falling back to 127.0.0.1 on a machine without IPv6).
 */
export async function startWebhookReceiver(
  respond: Respond = noContent,
  { dualStack = false } = {},
): Promise<WebhookReceiver> {
  const requests: ReceivedRequest[] = [];
  const waiting: Array<(request: ReceivedRequest) => void> = [];
  let taken = 0;
  let connections = 0;
  const server = createServer((incoming, response) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const request = {
        method: incoming.method ?? '',
        path: incoming.url ?? '',
        headers: incoming.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(request);
      waiting.shift()?.(request);
      respond(request, response);
    });
  });
  server.on('connection', () => (connections += 1));
  const host = await listen(server, dualStack);
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    port,
    host,
    requests,
    connections: () => connections,
    nextRequest: () => {
      const ready = requests[taken];
      taken += 1;
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve) => waiting.push(resolve));
    },
    close: async () => {
      // Receivers that never answer hold their sockets open; close() alone would wait.
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

async function listen(server: ReturnType<typeof createServer>, dualStack: boolean) {
  if (dualStack) {
    try {
      server.listen(0, '::');
      await once(server, 'listening');
      return '::';
    } catch {
      // No IPv6 on this machine: the IPv4 spellings are still tested.
    }
  }
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return '127.0.0.1';
}

/** A request whose signature the Standard Webhooks library verified. */
export interface VerifiedWebhook {
  /** `webhook-id`: the event's id. */
  id: string;
  type: string;
  data: Record<string, unknown>;
}

/** Answers a verified webhook (the default answers 204 at once). */
export type AnswerWebhook = (webhook: VerifiedWebhook, response: ServerResponse) => void;

export interface VerifyingReceiver {
  url: string;
  /** The endpoint's secret: set it once the endpoint is made (its secret is shown then). */
  secret: string;
  /** Every verified request, answered or not, in arrival order. */
  verified: VerifiedWebhook[];
  /** Requests refused (401) because no signature verified. */
  refused: () => number;
  close(): Promise<void>;
}

/**
 * A receiver as the docs tell one to write: it verifies each request with the
 * `standardwebhooks` library and the endpoint's secret (401 when none verifies), records
 * it, then lets `answer` reply (to hold it, fail it, or answer 204).
 */
export async function startVerifyingReceiver(
  answer: AnswerWebhook = (_webhook, response) => response.writeHead(204).end(),
): Promise<VerifyingReceiver> {
  let refused = 0;
  const receiver: VerifyingReceiver = {
    url: '',
    secret: '',
    verified: [],
    refused: () => refused,
    close: async () => undefined,
  };
  const server = await startWebhookReceiver((request, response) => {
    let envelope: { type: string; data: Record<string, unknown> };
    try {
      envelope = new Webhook(receiver.secret).verify(
        request.body,
        request.headers as Record<string, string>,
      ) as typeof envelope;
    } catch {
      refused += 1;
      response.writeHead(401).end('bad signature');
      return;
    }
    const webhook = {
      id: String(request.headers['webhook-id']),
      type: envelope.type,
      data: envelope.data,
    };
    receiver.verified.push(webhook);
    answer(webhook, response);
  });
  receiver.url = server.url;
  receiver.close = () => server.close();
  return receiver;
}

/** Resolves once `check` holds, checking every 50 ms; throws after `timeoutMs`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
