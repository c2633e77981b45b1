import { describe, expect, it } from 'vitest';
import { isoInstant } from '../../src/db/statements.js';

describe('timestamps read by the named statements', () => {
  it.each([
    ['2024-04-28 10:53:00+00', '2024-04-28T10:53:00.000Z'],
    ['2024-04-28 10:53:00.1+00', '2024-04-28T10:53:00.100Z'],
    ['2024-04-28 10:53:00.12+00', '2024-04-28T10:53:00.120Z'],
    ['2024-04-28 10:53:00.123+00', '2024-04-28T10:53:00.123Z'],
    ['2024-04-28 10:53:00.123456+00', '2024-04-28T10:53:00.123Z'],
    ['0001-01-01 00:00:00+00', '0001-01-01T00:00:00.000Z'],
    ['9999-12-31 23:59:59.999+00', '9999-12-31T23:59:59.999Z'],
  ])('in UTC, are rearranged: %s', (text, iso) => {
    expect(isoInstant(text)).toBe(iso);
    // What a Date would have made of it (the reads through Drizzle).
    expect(new Date(iso).toISOString()).toBe(iso);
  });

  it.each([
    ['2024-04-28 12:53:00+02', '2024-04-28T10:53:00.000Z'],
    ['2024-04-28 05:23:00.5-05:30', '2024-04-28T10:53:00.500Z'],
    ['2024-01-01 00:30:00+01', '2023-12-31T23:30:00.000Z'],
  ])('at another offset, are converted to UTC: %s', (text, iso) => {
    expect(isoInstant(text)).toBe(iso);
  });

  it.each(['infinity', '2024-04-28 10:53:00+00 BC', 'garbage'])(
    'refuse what they cannot read: %s',
    (text) => {
      expect(() => isoInstant(text)).toThrow(/Not a timestamp/);
    },
  );
});
