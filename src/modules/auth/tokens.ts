import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Schemas } from '../../api-types.js';
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
  sessionId: string;
}

export interface TokenService {
  /** An access token of this session; `role` is informative, requests read the current one. */
  issue(userId: string, role: Schemas['Role'], sessionId: string): AccessToken;
  /** Reads `Authorization: Bearer …`; throws UnauthenticatedError unless it is a valid access token. */
  authenticate(request: FastifyRequest): Promise<TokenClaims>;
  /** The same for a token given otherwise (a WebSocket's `auth` message). */
  verify(token: string): TokenClaims;
}

interface Payload {
  sub?: unknown;
  sid?: unknown;
}

const isUuid = (value: unknown): value is string =>
  typeof value === 'string' && uuidPattern.test(value);

/** Checked here, before they reach a query as uuids: anything else is not our token. */
function claimsOf(payload: Payload): TokenClaims {
  if (!isUuid(payload.sub) || !isUuid(payload.sid)) {
    throw new UnauthenticatedError('The access token is not valid.');
  }
  return { userId: payload.sub.toLowerCase(), sessionId: payload.sid.toLowerCase() };
}

/**
 * Access tokens are @fastify/jwt's, registered in buildApp with HS256 pinned and `exp`,
 * `iss`, `aud`, `sub` and `sid` required; this module gives them a narrow, testable face.
 */
export function createTokenService(app: FastifyInstance, expiresInSeconds: number): TokenService {
  return {
    issue(userId, role, sessionId) {
      // The lifetime is the one @fastify/jwt was registered with: the same expiresInSeconds.
      return {
        accessToken: app.jwt.sign({ sub: userId, role, sid: sessionId }),
        tokenType: 'Bearer',
        expiresIn: expiresInSeconds,
      };
    },
    async authenticate(request) {
      if (!request.headers.authorization) {
        throw new UnauthenticatedError('Send an access token as "Authorization: Bearer <token>".');
      }
      let payload: Payload;
      try {
        payload = await request.jwtVerify<Payload>();
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
      return claimsOf(payload);
    },
    verify(token) {
      let payload: Payload;
      try {
        // The options @fastify/jwt was registered with: HS256, iss, aud, exp, sub, sid.
        payload = app.jwt.verify<Payload>(token);
      } catch (error) {
        throw new UnauthenticatedError(
          (error as { code?: string }).code === 'FAST_JWT_EXPIRED'
            ? 'The access token has expired. Refresh it, then send auth again.'
            : 'The access token is not valid.',
        );
      }
      return claimsOf(payload);
    },
  };
}
