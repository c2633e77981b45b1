import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from '../../src/lib/cursor.js';

const position = {
  at: '2026-01-16T14:05:12.345Z',
  id: '5d0a6c43-93c5-4d5e-a3a4-7c1b0c2f9e21',
};

describe('cursors', () => {
  it('round-trip a position and are URL-safe', () => {
    const cursor = encodeCursor(position);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor)).toEqual(position);
  });

  it.each([
    ['not base64 of anything', 'abc'],
    ['a bad date', Buffer.from(`2026-13-45T00:00:00.000Z|${position.id}`).toString('base64url')],
    ['a bad id', Buffer.from(`${position.at}|not-a-uuid`).toString('base64url')],
    ['extra parts', Buffer.from(`${position.at}|${position.id}|x`).toString('base64url')],
    ['no precision', Buffer.from(`2026-01-16T14:05:12Z|${position.id}`).toString('base64url')],
  ])('refuse %s', (_name, cursor) => {
    expect(decodeCursor(cursor)).toBeNull();
  });
});
