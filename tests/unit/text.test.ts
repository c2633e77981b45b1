import { describe, expect, it } from 'vitest';
import { unstorableText } from '../../src/http/json-body.js';
import { passwordTooLong } from '../../src/lib/passwords.js';

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

describe('passwordTooLong', () => {
  it('allows 72 bytes and refuses 73, naming the field', () => {
    expect(passwordTooLong('a'.repeat(72))).toBeNull();
    expect(passwordTooLong(`${'a'.repeat(71)}é`)).toMatchObject({
      code: 'INVALID_INPUT',
      field: 'password',
      message: expect.stringMatching(/too long/),
    });
    // 24 characters of three bytes each are 72 bytes; one more is too many.
    expect(passwordTooLong('€'.repeat(24))).toBeNull();
    expect(passwordTooLong('€'.repeat(25), 'newPassword')).toMatchObject({ field: 'newPassword' });
  });
});
