import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebhookDispatcher, type WebhookLookup } from '../../src/lib/webhooks/dispatcher.js';
import { sendWebhook } from '../../src/lib/webhooks/send.js';
import { createWebhookSecret } from '../../src/lib/webhooks/signing.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';

// Names resolved by the injected lookup, so that no real DNS is needed.
const names: Record<string, Array<{ address: string; family: 4 | 6 }>> = {
  'rebound.example': [{ address: '127.0.0.1', family: 4 }],
  'mixed.example': [
    { address: '93.184.215.14', family: 4 },
    { address: '127.0.0.1', family: 4 },
  ],
  'metadata.example': [{ address: '169.254.169.254', family: 4 }],
  'private6.example': [{ address: 'fd12:3456::1', family: 6 }],
};
const lookup: WebhookLookup = async (hostname) => {
  const found = names[hostname];
  if (!found) throw Object.assign(new Error(`no test name ${hostname}`), { code: 'ENOTFOUND' });
  return found;
};

const guarded = createWebhookDispatcher({ lookup });
// The control: the same URLs with the checks off reach the receiver, so a refusal below is
// the check at work and not a URL that could not have connected anyway.
const open = createWebhookDispatcher({ allowPrivateNetworks: true });
let receiver: WebhookReceiver;
beforeAll(async () => {
  receiver = await startWebhookReceiver(undefined, { dualStack: true });
});
afterAll(async () => {
  await Promise.all([guarded.close(), open.close(), receiver.close()]);
});

const secrets = [createWebhookSecret()];
const send = (host: string, dispatcher = guarded) =>
  sendWebhook(
    { url: `http://${host}:${receiver.port}/hooks`, id: 'msg_ssrf', body: '{}', secrets },
    { dispatcher },
  );

describe('webhooks are refused on every spelling of loopback', () => {
  it.each([
    ['127.1', '127.0.0.1', 'a loopback address', 4],
    ['2130706433', '127.0.0.1', 'a loopback address', 4],
    ['0x7f000001', '127.0.0.1', 'a loopback address', 4],
    ['017700000001', '127.0.0.1', 'a loopback address', 4],
    ['127.0.0.1', '127.0.0.1', 'a loopback address', 4],
    ['0.0.0.0', '0.0.0.0', 'an unspecified address', 4],
    ['[::1]', '[::1]', 'a loopback address', 6],
    ['[::ffff:127.0.0.1]', '[::ffff:7f00:1]', 'a loopback address', 6],
    ['[::ffff:7f00:1]', '[::ffff:7f00:1]', 'a loopback address', 6],
  ])('%s', async (host, address, why, family) => {
    const before = receiver.connections();
    const result = await send(host);
    expect(result).toEqual({
      ok: false,
      durationMs: expect.any(Number),
      error: `refused to connect to ${address}: ${why}`,
    });
    expect(receiver.connections()).toBe(before);

    if (family === 6 && receiver.host !== '::') return; // no IPv6 on this machine
    const requests = receiver.requests.length;
    expect(await send(host, open)).toMatchObject({ ok: true, status: 204 });
    expect(receiver.requests).toHaveLength(requests + 1);
  });

  it('localhost (the system resolver, /etc/hosts)', async () => {
    const dispatcher = createWebhookDispatcher();
    try {
      const before = receiver.connections();
      const result = await send('localhost', dispatcher);
      expect(result).toMatchObject({
        ok: false,
        error: expect.stringMatching(
          /^refused to connect to (127\.0\.0\.1|\[::1\]) \(localhost resolves to it\): a loopback address$/,
        ),
      });
      expect(receiver.connections()).toBe(before);
    } finally {
      await dispatcher.close();
    }
  });
});

describe('webhooks are refused on names that resolve to a forbidden address', () => {
  it.each([
    ['rebound.example', '127.0.0.1', 'a loopback address'],
    ['mixed.example', '127.0.0.1', 'a loopback address'],
    ['metadata.example', '169.254.169.254', 'the cloud metadata service'],
    ['private6.example', '[fd12:3456::1]', 'a unique-local address'],
  ])('%s', async (name, address, why) => {
    const before = receiver.connections();
    expect(await send(name)).toMatchObject({
      ok: false,
      error: `refused to connect to ${address} (${name} resolves to it): ${why}`,
    });
    expect(receiver.connections()).toBe(before);
  });

  it('lets a name through with allowPrivateNetworks, to the address the lookup gave', async () => {
    const dispatcher = createWebhookDispatcher({ allowPrivateNetworks: true, lookup });
    try {
      const requests = receiver.requests.length;
      expect(await send('rebound.example', dispatcher)).toMatchObject({ ok: true, status: 204 });
      expect(receiver.requests).toHaveLength(requests + 1);
    } finally {
      await dispatcher.close();
    }
  });

  it('says when a name does not resolve', async () => {
    expect(await send('nowhere.example')).toMatchObject({
      ok: false,
      error: 'host nowhere.example not found',
    });
  });
});

describe('webhooks are refused on other forbidden IP literals', () => {
  it.each([
    ['169.254.169.254', 'the cloud metadata service'],
    ['[fd00:ec2::254]', 'the cloud metadata service'],
    ['10.0.0.1', 'a private address'],
    ['192.168.1.1', 'a private address'],
    ['100.64.0.1', 'a shared (carrier-grade NAT) address'],
    ['169.254.10.1', 'a link-local address'],
    ['[fe80::1]', 'a link-local address'],
    ['[fc00::1]', 'a unique-local address'],
    ['[::]', 'an unspecified address'],
    ['224.0.0.1', 'a multicast address'],
    ['255.255.255.255', 'the broadcast address'],
    ['240.0.0.1', 'a reserved address'],
    ['[64:ff9b::7f00:1]', 'a reserved address'],
  ])('%s', async (host, why) => {
    const result = await send(host);
    expect(result).toMatchObject({ ok: false, error: `refused to connect to ${host}: ${why}` });
  });
});
