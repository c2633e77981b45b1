import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashOpaqueToken, newOpaqueToken } from '../../src/lib/opaque-tokens.js';

describe('opaque tokens', () => {
  it('are 32 random bytes in base64url (43 characters), different every time', () => {
    const tokens = Array.from({ length: 100 }, () => newOpaqueToken().token);
    for (const token of tokens) {
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    }
    expect(new Set(tokens).size).toBe(100);
  });

  it('are stored as the SHA-256 of the token, in hex', () => {
    const { token, hash } = newOpaqueToken();
    expect(hash).toBe(createHash('sha256').update(token).digest('hex'));
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hashOpaqueToken(token)).toBe(hash);
    expect(hashOpaqueToken(`${token}x`)).not.toBe(hash);
  });
});
