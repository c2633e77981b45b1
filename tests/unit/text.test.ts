import { describe, expect, it } from 'vitest';
import { unstorableText } from '../../src/http/json-body.js';
import { assertPasswordFits } from '../../src/modules/auth/passwords.js';

describe('unstorableText', () => {
  it('accepts any well-formed text without NUL', () => {
    expect(
      unstorableText({ a: 'Ada 👩🏽‍💻', b: ['\u200Fשלום', `O'Brien "\\"`], c: 1, d: null }, '', []),
    ).toEqual([]);
  });

  it('points at every NUL and lone surrogate, keys included', () => {
    expect(
      unstorableText({ a: 'x\u0000y', b: [{ 'c/d': '\ud800' }], ['k\u0000']: 1 }, '', []),
    ).toEqual([
      { location: 'body', pointer: '/a', message: expect.stringMatching(/NUL/) },
      { location: 'body', pointer: '/b/0/c~1d', message: expect.stringMatching(/surrogate/) },
      { location: 'body', pointer: '/k\u0000', message: expect.stringMatching(/NUL/) },
    ]);
  });
});

describe('assertPasswordFits', () => {
  it('allows 72 bytes and refuses 73', () => {
    expect(() => assertPasswordFits('a'.repeat(72))).not.toThrow();
    expect(() => assertPasswordFits(`${'a'.repeat(71)}é`)).toThrow(/too long/);
    // 24 characters of three bytes each are 72 bytes; one more is too many.
    expect(() => assertPasswordFits('€'.repeat(24))).not.toThrow();
    expect(() => assertPasswordFits('€'.repeat(25))).toThrow(/too long/);
  });
});
