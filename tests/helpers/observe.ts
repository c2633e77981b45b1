import type { FastifyInstance } from 'fastify';
import { contractViolations, isExcludedRoute } from './contract.js';

/**
 * What must never appear in a response: a password property, a password hash (by name or
 * as a bcrypt string), or any password a client has sent to this app. Validation problems
 * may name a field (`"pointer":"/passwordHash"`), never hold its value.
 */
export function secretsIn(body: string, passwordsSent: Iterable<string>): string[] {
  const found: string[] = [];
  if (/"password"\s*:/i.test(body)) found.push('a "password" property');
  if (/"password_?hash"\s*:/i.test(body)) found.push('a password hash property');
  if (body.includes('$2')) found.push('a bcrypt hash ($2…)');
  for (const password of passwordsSent) {
    if (body.includes(password)) found.push(`the password ${JSON.stringify(password)}`);
  }
  return found;
}

const describesTheApi = (route: string | undefined) =>
  route === '/openapi.json' ||
  route === '/openapi.yaml' ||
  (route !== undefined && isExcludedRoute(route));

/**
 * Checks every response the app sends: against the spec (status, content type, body,
 * headers) and for leaked secrets. `take()` hands over what was found since the last call.
 */
export function observeResponses(app: FastifyInstance): { take(): string[] } {
  const problems: string[] = [];
  const passwordsSent = new Set<string>();
  app.addHook('onSend', async (request, reply, payload) => {
    const { password, currentPassword, newPassword } = (request.body ?? {}) as Record<
      string,
      unknown
    >;
    for (const sent of [password, currentPassword, newPassword]) {
      // Short strings would match by chance; sign-up refuses passwords under 8 characters.
      if (typeof sent === 'string' && sent.length >= 8) passwordsSent.add(sent);
    }
    // A string, as the serialiser makes it, or bytes (the response cache's hits).
    const body =
      typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString() : '';
    const where = `${request.method} ${request.url} → ${reply.statusCode}`;
    problems.push(
      ...contractViolations({
        method: request.method,
        route: request.routeOptions.url,
        statusCode: reply.statusCode,
        contentType: reply.getHeader('content-type') as string | undefined,
        headers: reply.getHeaders(),
        payload: body,
      }),
      // The spec (and the docs that show it) describes the password fields; every other
      // answer must not hold one.
      ...(describesTheApi(request.routeOptions.url)
        ? []
        : secretsIn(body, passwordsSent).map((secret) => `${where}: leaks ${secret}`)),
    );
    return payload;
  });
  return { take: () => problems.splice(0) };
}
