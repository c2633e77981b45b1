/**
 * Why a database could not be used, in one line that names the cause and the setting to
 * change: what `npm start`, `npm run db:migrate` and the other scripts print instead of a
 * stack trace. Never the password.
 */

/** A failure to start that the message fully explains: printed alone, exit 1. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** postgres://user@host:port/database, or the socket folder: without the password. */
export function describeDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const socket = parsed.searchParams.get('host');
    const user = parsed.username ? `${decodeURIComponent(parsed.username)}@` : '';
    const where = socket ?? `${parsed.hostname}${parsed.port ? `:${parsed.port}` : ''}`;
    return `${parsed.protocol}//${user}${where}${parsed.pathname}`;
  } catch {
    return 'DATABASE_URL';
  }
}

interface DriverError {
  code?: unknown;
  message?: unknown;
}

/**
 * The error of a first connection (or first query), explained; null when it is not about
 * reaching the database (let the caller report it as it is).
 */
export function explainConnectionError(error: unknown, where: string): string | null {
  const { code, message } = (error ?? {}) as DriverError;
  const text = typeof message === 'string' ? message : String(error);
  switch (code) {
    case 'ECONNREFUSED':
      return `Cannot reach the database at ${where}: connection refused (is PostgreSQL running there?). Check DATABASE_URL.`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `Cannot reach the database at ${where}: its host name does not resolve. Check DATABASE_URL.`;
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `Cannot reach the database at ${where}: ${text}. Check DATABASE_URL and the network.`;
    case 'ENOENT':
      return `Cannot reach the database at ${where}: no PostgreSQL socket there. Check DATABASE_URL.`;
    case '3D000':
      return `The database at ${where} does not exist (${text}): create it (createdb), or fix the database name in DATABASE_URL.`;
    case '28000':
    case '28P01':
      return `PostgreSQL at ${where} refused the login (${text}): check the user and password in DATABASE_URL.`;
    case '57P03':
      return `The database at ${where} is starting up or shutting down: try again in a moment.`;
    default:
      break;
  }
  if (/timeout/i.test(text) && /connect/i.test(text)) {
    return `The database at ${where} did not answer within DB_CONNECT_TIMEOUT_MS: is the host right, and PostgreSQL up? Check DATABASE_URL.`;
  }
  return null;
}
