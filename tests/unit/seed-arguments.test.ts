import { describe, expect, it } from 'vitest';
import { parseSeedArguments } from '../../scripts/seed-data.js';

describe('the arguments of npm run db:seed', () => {
  it('are optional: the demo data alone', () => {
    expect(parseSeedArguments([])).toEqual({ kind: 'seed', users: 0, posts: 0 });
  });

  it('take counts as separate or joined values, with _ between digits', () => {
    expect(parseSeedArguments(['--users', '10000', '--posts=200_000'])).toEqual({
      kind: 'seed',
      users: 10_000,
      posts: 200_000,
    });
    expect(parseSeedArguments(['--users', '7'])).toEqual({ kind: 'seed', users: 7, posts: 0 });
  });

  it('make one user per 20 posts, at least one, when only --posts is given', () => {
    expect(parseSeedArguments(['--posts', '1000'])).toEqual({
      kind: 'seed',
      users: 50,
      posts: 1000,
    });
    expect(parseSeedArguments(['--posts', '3'])).toEqual({ kind: 'seed', users: 1, posts: 3 });
  });

  it('ask for help', () => {
    expect(parseSeedArguments(['--help'])).toEqual({ kind: 'help' });
    expect(parseSeedArguments(['-h', '--users', 'x'])).toEqual({ kind: 'help' });
  });

  it.each([
    [['--users', 'ten'], '--users must be a whole number, not "ten"'],
    [['--posts', '1.5'], '--posts must be a whole number, not "1.5"'],
    [['--posts', '1e6'], '--posts must be a whole number, not "1e6"'],
    [['--users='], '--users must be a whole number, not ""'],
    [['--users', '10000001'], '--users must be at most 10,000,000'],
    [['--users', '0', '--posts', '10'], '--posts needs at least one user'],
    [['--users', '-5'], /--users/],
    [['--user', '5'], /Unknown option '--user'/],
    [['--users'], /--users/],
    [['500'], /positional/],
  ])('refuse %j', (args, message) => {
    const parsed = parseSeedArguments(args);
    expect(parsed.kind).toBe('error');
    if (parsed.kind === 'error') {
      if (typeof message === 'string') expect(parsed.message).toContain(message);
      else expect(parsed.message).toMatch(message);
    }
  });
});
