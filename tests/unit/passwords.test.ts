import bcrypt from 'bcryptjs';
import { describe, expect, it, vi } from 'vitest';
import { createPasswordHasher } from '../../src/lib/passwords.js';

describe('the password hasher', () => {
  it('verifies what it hashed, and nothing else', async () => {
    const hasher = createPasswordHasher(4);
    const hash = await hasher.hash('correct horse battery staple');
    expect(bcrypt.getRounds(hash)).toBe(4);
    expect(await hasher.verify('correct horse battery staple', hash)).toBe(true);
    expect(await hasher.verify('Correct horse battery staple', hash)).toBe(false);
  });

  it('spends a compare of its own cost on unknown accounts', async () => {
    const compare = vi.spyOn(bcrypt, 'compare');
    try {
      for (const cost of [4, 6]) {
        await createPasswordHasher(cost).verifyNothing('a guess');
        const [, hash] = compare.mock.lastCall as [string, string];
        // A well-formed hash of that cost: bcrypt runs all its rounds before answering no.
        expect(bcrypt.getRounds(hash)).toBe(cost);
        expect(bcrypt.getSalt(hash)).toMatch(/^\$2b\$0\d\$[./A-Za-z0-9]{22}$/);
      }
    } finally {
      compare.mockRestore();
    }
  });
});
