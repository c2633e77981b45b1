import type { FastifyInstance, FastifyRequest } from 'fastify';
import { UnauthenticatedError } from '../../errors.js';
import { uuidPattern } from '../../lib/uuid.js';

export interface AccessToken {
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
}

/** What a verified access token says: whose it is and which session issued it. */
export interface TokenClaims {
  userId: string;
  sessionId: string | null;
}

export interface TokenService {
  issue(userId: string): AccessToken;
  /** Reads `Authorization: Bearer …`; throws UnauthenticatedError unless it is a valid access token. */
  authenticate(request: FastifyRequest): Promise<TokenClaims>;
}

/**
 * Access tokens are @fastify/jwt's, registered in buildApp with HS256 pinned and `exp`,
 * `iss`, `aud` and `sub` required; this module gives them a narrow, testable face.
 */
export function createTokenService(app: FastifyInstance, expiresInSeconds: number): TokenService {
  return {
    issue(userId) {
      // The lifetime is the one @fastify/jwt was registered with: the same expiresInSeconds.
      return {
        accessToken: app.jwt.sign({ sub: userId }),
        tokenType: 'Bearer',
        expiresIn: expiresInSeconds,
      };
    },
    async authenticate(request) {
      if (!request.headers.authorization) {
        throw new UnauthenticatedError('Send an access token as "Authorization: Bearer <token>".');
      }
      let payload: { sub?: unknown };
      try {
        payload = await request.jwtVerify<{ sub?: unknown }>();
      } catch (error) {
        const code = (error as { code?: string }).code;
        throw new UnauthenticatedError(
          code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED'
            ? 'The access token has expired. Log in again.'
            : code === 'FST_JWT_BAD_REQUEST'
              ? 'Send an access token as "Authorization: Bearer <token>".'
              : 'The access token is not valid.',
        );
      }
      if (typeof payload.sub !== 'string' || !uuidPattern.test(payload.sub)) {
        throw new UnauthenticatedError('The access token is not valid.');
      }
      return { userId: payload.sub.toLowerCase(), sessionId: null };
    },
  };
}
