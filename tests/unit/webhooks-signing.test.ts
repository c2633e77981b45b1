import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import {
  createWebhookSecret,
  isWebhookSecret,
  signWebhook,
} from '../../src/lib/webhooks/signing.js';

const message = { id: 'msg_2fY8', body: '{"type":"post.published"}', timestamp: new Date() };

describe('webhook secrets', () => {
  it('creates whsec_ + base64 secrets of 32 random bytes', () => {
    const secret = createWebhookSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(isWebhookSecret(secret)).toBe(true);
    expect(createWebhookSecret()).not.toBe(secret);
  });

  it.each([
    ['no prefix', Buffer.alloc(32, 1).toString('base64')],
    ['not base64', 'whsec_' + '!'.repeat(44)],
    ['too short (16 bytes)', 'whsec_' + Buffer.alloc(16, 1).toString('base64')],
    ['too long (65 bytes)', 'whsec_' + Buffer.alloc(65, 1).toString('base64')],
    ['empty', 'whsec_'],
  ])('refuses a secret with %s', (_why, secret) => {
    expect(isWebhookSecret(secret)).toBe(false);
    expect(() => signWebhook(message, [secret])).toThrow(TypeError);
  });

  it('refuses to sign without a secret', () => {
    expect(() => signWebhook(message, [])).toThrow(/at least one signing secret/);
  });
});

describe('signWebhook', () => {
  it('writes the Standard Webhooks headers, which the reference library verifies', () => {
    const secret = createWebhookSecret();
    const headers = signWebhook(message, [secret]);
    expect(headers['webhook-id']).toBe(message.id);
    expect(headers['webhook-timestamp']).toBe(
      String(Math.floor(message.timestamp.getTime() / 1000)),
    );
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(new Webhook(secret).verify(message.body, { ...headers })).toEqual({
      type: 'post.published',
    });
  });

  it('signs with both secrets during a rotation, so either one verifies', () => {
    const [previous, current] = [createWebhookSecret(), createWebhookSecret()];
    const headers = { ...signWebhook(message, [current, previous]) };
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    expect(() => new Webhook(previous).verify(message.body, headers)).not.toThrow();
    expect(() => new Webhook(current).verify(message.body, headers)).not.toThrow();
    expect(() => new Webhook(createWebhookSecret()).verify(message.body, headers)).toThrow(
      /No matching signature/,
    );
  });

  it('binds the signature to the body, the id and the timestamp', () => {
    const secret = createWebhookSecret();
    const headers = { ...signWebhook(message, [secret]) };
    const verifier = new Webhook(secret);
    expect(() => verifier.verify('{"type":"post.deleted"}', headers)).toThrow();
    expect(() =>
      verifier.verify(message.body, { ...headers, 'webhook-id': 'msg_other' }),
    ).toThrow();
    const earlier = String(Number(headers['webhook-timestamp']) - 1);
    expect(() =>
      verifier.verify(message.body, { ...headers, 'webhook-timestamp': earlier }),
    ).toThrow();
  });
});
