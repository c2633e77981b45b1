import { createHash, randomBytes } from 'node:crypto';

/** 256 bits: guessing one is out of reach, so a hash without salt or stretching is enough. */
export const OPAQUE_TOKEN_BYTES = 32;

export interface OpaqueToken {
  /** What the client gets, once: base64url, 43 characters. */
  readonly token: string;
  /** What the database keeps: the SHA-256 of the token, in hex. */
  readonly hash: string;
}

/**
 * A random bearer secret (a refresh token, an emailed link's token). Only its hash is
 * stored, so a copy of the database holds nothing a client could present.
 */
export function newOpaqueToken(): OpaqueToken {
  const token = randomBytes(OPAQUE_TOKEN_BYTES).toString('base64url');
  return { token, hash: hashOpaqueToken(token) };
}

/** The key an opaque token is stored and looked up by. */
export function hashOpaqueToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
