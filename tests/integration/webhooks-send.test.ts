import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createWebhookDispatcher,
  defaultConnectTimeoutMs,
} from '../../src/lib/webhooks/dispatcher.js';
import {
  defaultAttemptTimeoutMs,
  sendWebhook,
  type WebhookAttempt,
} from '../../src/lib/webhooks/send.js';
import { createWebhookSecret } from '../../src/lib/webhooks/signing.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';

// Receivers listen on 127.0.0.1, which the library refuses by default: these tests let it.
const dispatcher = createWebhookDispatcher({ allowPrivateNetworks: true });
const receivers: WebhookReceiver[] = [];
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
});
afterAll(() => dispatcher.close());

async function receiver(...args: Parameters<typeof startWebhookReceiver>) {
  const started = await startWebhookReceiver(...args);
  receivers.push(started);
  return started;
}

function attempt(url: string, secrets = [createWebhookSecret()]): WebhookAttempt {
  return { url, id: 'msg_2fY8kQ', body: '{"type":"post.published","data":{"id":"p1"}}', secrets };
}

/** A receiver that answers 204 only when the signature verifies with `secret`. */
function verifyingWith(secret: string) {
  return receiver((request, response) => {
    try {
      new Webhook(secret).verify(request.body, request.headers as Record<string, string>);
      response.writeHead(204).end();
    } catch (error) {
      response.writeHead(401).end((error as Error).message);
    }
  });
}

describe('sendWebhook: signed delivery', () => {
  it('POSTs the body as JSON with headers the standardwebhooks library verifies', async () => {
    const secret = createWebhookSecret();
    const endpoint = await verifyingWith(secret);
    const result = await sendWebhook(attempt(endpoint.url, [secret]), { dispatcher });
    expect(result).toEqual({ ok: true, status: 204, body: '', durationMs: expect.any(Number) });
    const [request] = endpoint.requests;
    expect(request).toMatchObject({ method: 'POST', path: '/hooks' });
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers['webhook-id']).toBe('msg_2fY8kQ');
    expect(request?.body).toBe(attempt(endpoint.url).body);
  });

  it('is refused by a receiver holding another secret (the check above can fail)', async () => {
    const endpoint = await verifyingWith(createWebhookSecret());
    const result = await sendWebhook(attempt(endpoint.url), { dispatcher });
    expect(result).toMatchObject({ ok: false, status: 401, body: 'No matching signature found' });
  });

  it('during a rotation, verifies at a receiver holding only the old or only the new secret', async () => {
    const [previous, current] = [createWebhookSecret(), createWebhookSecret()];
    const oldOnly = await verifyingWith(previous);
    const newOnly = await verifyingWith(current);
    for (const endpoint of [oldOnly, newOnly]) {
      const result = await sendWebhook(attempt(endpoint.url, [current, previous]), { dispatcher });
      expect(result).toMatchObject({ ok: true, status: 204 });
    }
  });

  it('stamps webhook-timestamp with the clock given', async () => {
    const endpoint = await receiver();
    const now = () => new Date('2026-03-01T12:00:00.750Z');
    await sendWebhook(attempt(endpoint.url), { dispatcher, now });
    expect((await endpoint.nextRequest()).headers['webhook-timestamp']).toBe('1772366400');
  });

  it('sends nothing with a malformed secret, and says why', async () => {
    const endpoint = await receiver();
    const result = await sendWebhook(attempt(endpoint.url, ['whsec_short']), { dispatcher });
    expect(result).toMatchObject({ ok: false, error: expect.stringMatching(/signing secret/) });
    expect(endpoint.connections()).toBe(0);
  });
});

describe('sendWebhook: failed attempts', () => {
  it('counts a 500 as failed, keeping the status and the body', async () => {
    const endpoint = await receiver((_request, response) => {
      response.writeHead(500, { 'content-type': 'text/plain' }).end('database unavailable');
    });
    const result = await sendWebhook(attempt(endpoint.url), { dispatcher });
    expect(result).toEqual({
      ok: false,
      status: 500,
      body: 'database unavailable',
      durationMs: expect.any(Number),
      error: 'the endpoint answered 500 Internal Server Error',
    });
  });

  it('gives up on a receiver that never answers, at the deadline given', async () => {
    const endpoint = await receiver(() => {
      // Never answers.
    });
    const result = await sendWebhook(attempt(endpoint.url), { dispatcher, timeoutMs: 300 });
    expect(result).toEqual({
      ok: false,
      durationMs: expect.any(Number),
      error: 'no response within 300 ms',
    });
    expect(result.durationMs).toBeGreaterThanOrEqual(290);
    expect(result.durationMs).toBeLessThan(5_000);
    expect(endpoint.requests).toHaveLength(1);
  });

  it('counts a 2xx whose body never ends as failed at the deadline', async () => {
    const endpoint = await receiver((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.write('partial');
    });
    const result = await sendWebhook(attempt(endpoint.url), { dispatcher, timeoutMs: 300 });
    expect(result).toMatchObject({
      ok: false,
      status: 200,
      error: 'the response body did not finish within 300 ms',
    });
  });

  it('gives up on a connection that does not open in time (TLS that never answers)', async () => {
    expect([defaultConnectTimeoutMs, defaultAttemptTimeoutMs]).toEqual([5_000, 10_000]);
    // undici counts the TLS handshake as part of connecting: a server that accepts the TCP
    // connection and then says nothing holds the connection half-open for ever.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket)).listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const { port } = silent.address() as AddressInfo;
    const impatient = createWebhookDispatcher({
      allowPrivateNetworks: true,
      connectTimeoutMs: 300,
    });
    try {
      const result = await sendWebhook(attempt(`https://127.0.0.1:${port}/hooks`), {
        dispatcher: impatient,
      });
      expect(result).toEqual({
        ok: false,
        durationMs: expect.any(Number),
        error: `could not connect to 127.0.0.1:${port} in time`,
      });
      expect(result.durationMs).toBeGreaterThanOrEqual(290);
      expect(result.durationMs).toBeLessThan(defaultAttemptTimeoutMs);
      expect(sockets).toHaveLength(1);
    } finally {
      await impatient.close();
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('says when nothing listens at the port', async () => {
    const endpoint = await receiver();
    const closedPort = endpoint.port;
    await endpoint.close();
    receivers.splice(receivers.indexOf(endpoint), 1);
    const result = await sendWebhook(attempt(`http://127.0.0.1:${closedPort}/hooks`), {
      dispatcher,
    });
    expect(result).toMatchObject({
      ok: false,
      error: `connection refused by 127.0.0.1:${closedPort}`,
    });
    expect(result).not.toHaveProperty('status');
  });

  it.each([
    ['not a URL', 'the endpoint URL is not a valid URL'],
    ['ftp://example.com/hooks', 'the endpoint URL must be http or https, not ftp'],
    ['file:///etc/passwd', 'the endpoint URL must be http or https, not file'],
  ])('refuses the endpoint URL %s', async (url, error) => {
    expect(await sendWebhook(attempt(url), { dispatcher })).toMatchObject({ ok: false, error });
  });
});

describe('sendWebhook: redirects are not followed', () => {
  let target: WebhookReceiver;
  beforeAll(async () => {
    target = await startWebhookReceiver((_request, response) => response.writeHead(204).end());
  });
  afterAll(() => target.close());
  // The target must never be called: a followed redirect would reach it within the attempt.
  afterEach(() => expect(target.requests).toEqual([]));

  it.each([
    [301, 'Moved Permanently'],
    [302, 'Found'],
    [307, 'Temporary Redirect'],
    [308, 'Permanent Redirect'],
  ])('counts a %i as failed and says so', async (status, reason) => {
    const endpoint = await receiver((_request, response) => {
      response.writeHead(status, { location: target.url }).end();
    });
    const result = await sendWebhook(attempt(endpoint.url), { dispatcher });
    expect(result).toMatchObject({
      ok: false,
      status,
      error: `the endpoint answered ${status} ${reason} to ${target.url}; redirects are not followed`,
    });
    expect(endpoint.requests).toHaveLength(1);
  });
});

describe('sendWebhook: response bodies', () => {
  it('keeps the first 1024 characters of a long body', async () => {
    const text = 'é'.repeat(600) + 'x'.repeat(2000);
    const endpoint = await receiver((_request, response) => response.end(text));
    const result = await sendWebhook(attempt(endpoint.url), { dispatcher });
    expect(result).toMatchObject({ ok: true, status: 200, body: text.slice(0, 1024) });
  });

  it('stops reading a body that never ends once it has 1024 characters', async () => {
    let stopped = false;
    const endpoint = await receiver((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      const more = () => {
        while (!response.destroyed && response.write('y'.repeat(16_384)));
        if (!response.destroyed) response.once('drain', more);
      };
      response.once('close', () => (stopped = true));
      more();
    });
    const result = await sendWebhook(attempt(endpoint.url), { dispatcher, timeoutMs: 5_000 });
    expect(result).toMatchObject({ ok: true, status: 200, body: 'y'.repeat(1024) });
    await expect.poll(() => stopped).toBe(true);
  });

  it('does not split a character made of two UTF-16 units, and replaces NUL', async () => {
    const text = 'a'.repeat(1023) + '😀' + 'b';
    const endpoint = await receiver((_request, response) => response.end(text));
    const result = await sendWebhook(attempt(endpoint.url), { dispatcher });
    expect(result).toMatchObject({ ok: true, body: 'a'.repeat(1023) });
    const nul = await receiver((_request, response) => response.end('a\u0000b'));
    expect(await sendWebhook(attempt(nul.url), { dispatcher })).toMatchObject({ body: 'a\uFFFDb' });
  });
});
