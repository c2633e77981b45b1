import bcrypt from 'bcryptjs';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createPasswordHasher, dummyHashFor } from '../../src/lib/passwords.js';

const hashers: Array<ReturnType<typeof createPasswordHasher>> = [];
const hasher = (cost: number) => {
  const made = createPasswordHasher({ cost, threads: 1 });
  hashers.push(made);
  return made;
};
afterAll(async () => {
  await Promise.all(hashers.map((made) => made.close()));
});

describe('the password hasher', () => {
  it('verifies what it hashed, and nothing else', async () => {
    const passwords = hasher(4);
    const hash = await passwords.hash('correct horse battery staple');
    expect(bcrypt.getRounds(hash)).toBe(4);
    expect(await passwords.verify('correct horse battery staple', hash)).toBe(true);
    expect(await passwords.verify('Correct horse battery staple', hash)).toBe(false);
  });

  it('runs bcrypt in its worker threads, not on the event loop', async () => {
    const hashSync = vi.spyOn(bcrypt, 'hashSync');
    const compareSync = vi.spyOn(bcrypt, 'compareSync');
    try {
      const passwords = hasher(4);
      const hash = await passwords.hash('a password');
      expect(await passwords.verify('a password', hash)).toBe(true);
      await passwords.verifyNothing('a guess');
      expect(hashSync).not.toHaveBeenCalled();
      expect(compareSync).not.toHaveBeenCalled();
    } finally {
      hashSync.mockRestore();
      compareSync.mockRestore();
    }
  });

  it('spends a compare of its own cost on unknown accounts', async () => {
    for (const cost of [4, 6, 12]) {
      // Well-formed, of that cost: bcrypt runs all its rounds before answering no.
      expect(bcrypt.getRounds(dummyHashFor(cost))).toBe(cost);
    }
    expect(bcrypt.compareSync('a guess', dummyHashFor(4))).toBe(false);
    // A malformed one would make the worker throw.
    await expect(hasher(6).verifyNothing('a guess')).resolves.toBeUndefined();
  });

  it('asks for a rehash of hashes made at a lower cost only', async () => {
    const low = await hasher(4).hash('a password');
    expect(hasher(5).needsRehash(low)).toBe(true);
    expect(hasher(4).needsRehash(low)).toBe(false);
  });
});
