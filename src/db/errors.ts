/** The PostgreSQL error behind a Drizzle error (Drizzle wraps driver errors in `cause`). */
export function databaseErrorOf(
  error: unknown,
): { code?: string; constraint?: string; message: string } | null {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth += 1) {
    const candidate = current as Error & { code?: unknown; constraint?: unknown };
    if (typeof candidate.code === 'string' && /^[0-9A-Z]{5}$/.test(candidate.code)) {
      return {
        code: candidate.code,
        ...(typeof candidate.constraint === 'string' ? { constraint: candidate.constraint } : {}),
        message: candidate.message,
      };
    }
    current = candidate.cause;
  }
  return null;
}

export const UNIQUE_VIOLATION = '23505';
export const FOREIGN_KEY_VIOLATION = '23503';
