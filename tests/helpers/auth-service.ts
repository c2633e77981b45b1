import type { PasswordHasher } from '../../src/lib/passwords.js';
import { createLoginFailuresRepository } from '../../src/modules/auth/login-failures-repository.js';
import { createLoginLimits } from '../../src/modules/auth/login-limits.js';
import { createAuthService } from '../../src/modules/auth/service.js';
import { createSessionsRepository } from '../../src/modules/auth/sessions-repository.js';
import { createSessionsService } from '../../src/modules/auth/sessions-service.js';
import { createTokenService } from '../../src/modules/auth/tokens.js';
import { createUsersRepository } from '../../src/modules/users/repository.js';
import type { TestApp } from './app.js';

/**
 * The auth service on a test app's database, built as the app builds it but with the
 * password hasher given (one that counts, or one of another cost): for tests that look at
 * what a login does beneath the HTTP surface.
 */
export function authServiceWith(
  t: TestApp,
  passwords: PasswordHasher,
  limits: { maxFailures: number; windowSeconds: number },
) {
  const { db } = t.db.database;
  const loginLimits = createLoginLimits({
    failures: createLoginFailuresRepository(db, { windowSeconds: limits.windowSeconds }),
    maxFailures: limits.maxFailures,
  });
  const users = createUsersRepository(db);
  return createAuthService({
    users,
    passwords,
    sessions: createSessionsService({
      sessions: createSessionsRepository(db, {
        refreshTokenTtlSeconds: 86400,
        idleTimeoutSeconds: 3600,
        reuseGraceSeconds: 10,
      }),
      users,
      passwords,
      tokens: createTokenService(t.app, 900),
      loginLimits,
    }),
    loginLimits,
  });
}
