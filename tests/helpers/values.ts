import { createServer } from 'node:net';

let sequence = 0;

/** A name no other test of this run uses (usernames, email local parts). */
export function unique(prefix = 'u'): string {
  sequence += 1;
  return `${prefix}${sequence}${Math.random().toString(36).slice(2, 8)}`;
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

/** The fields of a full account (User), sorted: as its owner and admins see it. */
export const USER_KEYS = [
  'createdAt',
  'email',
  'emailVerified',
  'firstName',
  'id',
  'isActive',
  'lastName',
  'role',
  'updatedAt',
  'username',
];
