/**
 * `npm run mock`: a mock of the API for frontend teams, on http://127.0.0.1:4010.
 *
 * Two parts, started by this one command:
 * - in front, on the public port, the server's own contract layer: the routes of the spec
 *   through fastify-openapi-glue, the server's Ajv validation, JSON body parser, error
 *   handler and 404s. A request the server would refuse for its shape (a 400 naming every
 *   violation as `errors[{ location, pointer, message }]`, a 401 for a missing or
 *   malformed token, 404, 413, 414, 415) is refused here in the same words, by the same
 *   code;
 * - behind it, on an internal port, Prism (`prism mock`), which answers the requests the
 *   contract accepts with the spec's examples, and picks another status or example when
 *   asked to with `Prefer: code=409` or `Prefer: example=lastAdmin`.
 *
 * Tokens: the mock cannot know the server's JWT_SECRET, so it checks what it can of a
 * token (a JWS with the HS256 header and uuid `sub` and `sid` claims, not expired if it has
 * an `exp`) and not its signature: the token of the spec's `login` example, which the mock's
 * own login hands out, passes, and so does a real token of the server; `Bearer x` does not.
 *
 *   npm run mock                                # http://127.0.0.1:4010
 *   npm run mock -- --host 0.0.0.0 --port 4010  # (docker compose's mock service)
 *   npm run mock -- --prism-port 4011           # Prism's own port (default: any free one)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import Fastify, {
  type FastifyInstance,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import { UnauthenticatedError } from '../src/errors.js';
import { operationsOf, registerContract } from '../src/http/contract.js';
import { allowedMethodsOf } from '../src/http/allowed-methods.js';
import { registerErrorHandling, sendProblem } from '../src/http/error-handler.js';
import type { Handlers } from '../src/http/handler-types.js';
import { createClientErrorHandler } from '../src/http/client-errors.js';
import { registerJsonBodyParser } from '../src/http/json-body.js';
import { createContractValidation } from '../src/http/validation.js';
import { uuidPattern } from '../src/lib/uuid.js';
import { pathParameterLimit } from '../src/plugins/limits.js';
import { createMetaHandlers } from '../src/modules/meta/handlers.js';
import { bundledSpecPath, projectRoot } from '../src/paths.js';
import { loadSpec, publishedSpec } from '../src/spec.js';

/** The server's default BODY_LIMIT_BYTES (1 MiB); the mock reads the same variable. */
const DEFAULT_BODY_LIMIT = 1_048_576;

const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;

// Headers that belong to one connection, or that fetch computes itself.
const hopByHop = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
  'expect',
  'te',
  'trailer',
  'proxy-connection',
  'accept-encoding',
  'content-encoding',
]);

// --- Tokens ------------------------------------------------------------------------------

const base64url = /^[A-Za-z0-9_-]+$/;

function decodePart(part: string): unknown {
  if (!base64url.test(part)) return undefined;
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

const isUuid = (value: unknown): boolean => typeof value === 'string' && uuidPattern.test(value);

/**
 * What the mock checks of `Authorization: Bearer <token>`, in the server's words: the
 * header's format as @fastify/jwt reads it, then the token's shape (everything the server
 * checks but the signature, and the `iss`, `aud` and `exp` claims the spec's example token
 * does not carry). Throws the server's UnauthenticatedError (a 401 problem).
 */
function checkBearerToken(authorization: string | undefined): void {
  const sendOne = 'Send an access token as "Authorization: Bearer <token>".';
  if (!authorization) throw new UnauthenticatedError(sendOne);
  if (!/^Bearer\s/i.test(authorization)) {
    throw new UnauthenticatedError('The access token is not valid.');
  }
  const parts = authorization.split(' ');
  if (parts.length !== 2 || !parts[1]) throw new UnauthenticatedError(sendOne);
  const segments = parts[1].split('.');
  const header = segments.length === 3 ? decodePart(segments[0]!) : undefined;
  const payload = segments.length === 3 ? decodePart(segments[1]!) : undefined;
  const valid =
    typeof header === 'object' &&
    header !== null &&
    (header as { alg?: unknown }).alg === 'HS256' &&
    typeof payload === 'object' &&
    payload !== null &&
    isUuid((payload as { sub?: unknown }).sub) &&
    isUuid((payload as { sid?: unknown }).sid) &&
    base64url.test(segments[2]!);
  if (!valid) throw new UnauthenticatedError('The access token is not valid.');
  const { exp } = payload as { exp?: unknown };
  if (exp !== undefined && (typeof exp !== 'number' || exp * 1000 <= Date.now())) {
    throw new UnauthenticatedError('The access token has expired. Log in again.');
  }
}

// --- Forwarding to Prism -----------------------------------------------------------------

interface Forwarded {
  status: number;
  body: Buffer;
  headers: Record<string, string>;
}

async function forward(prism: string, request: FastifyRequest): Promise<Forwarded> {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined || hopByHop.has(name)) continue;
    headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  // The body as parsed and validated by the contract layer (JSON, or JSON merge patch).
  // An operation without a request body reads one and ignores it, as the server does;
  // Prism would refuse it (415), so it is not passed on.
  const declaresBody = request.routeOptions.config.requestMediaTypes !== undefined;
  const body =
    request.body === undefined || !declaresBody ? undefined : JSON.stringify(request.body);
  if (body === undefined) headers.delete('content-type');
  const response = await fetch(`${prism}${request.url}`, {
    // Fastify leaves the body out of the answer to a HEAD.
    method: request.method === 'HEAD' ? 'GET' : request.method,
    headers,
    ...(body === undefined ? {} : { body }),
    redirect: 'manual',
  });
  // Prism found something the contract layer let through, or an example that breaks the
  // spec: the mock and the server may disagree here, which is worth a line in the log.
  const violations = response.headers.get('sl-violations');
  if (violations) request.log.warn({ violations }, 'Prism');
  const answered: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    if (!hopByHop.has(name)) answered[name] = value;
  });
  return {
    status: response.status,
    body: Buffer.from(await response.arrayBuffer()),
    headers: answered,
  };
}

// --- CORS, as Prism does it: any origin, any header, credentials allowed -----------------

function corsHeaders(request: FastifyRequest): Record<string, string> {
  const origin = request.headers.origin;
  const requested = request.headers['access-control-request-headers'];
  return {
    'access-control-allow-origin': origin ?? '*',
    'access-control-allow-headers': typeof requested === 'string' ? requested : '*',
    'access-control-allow-credentials': 'true',
    'access-control-expose-headers': '*',
    ...(origin ? { vary: 'origin' } : {}),
  };
}

// --- The contract layer ------------------------------------------------------------------

interface MockOptions {
  /** Prism's base URL, e.g. http://127.0.0.1:4011. */
  prism: string;
  bodyLimit?: number;
  logger?: FastifyServerOptions['logger'];
}

/** The server's contract layer (routes, validation, problems) with Prism behind every route. */
async function buildMock(options: MockOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && requestIdPattern.test(given) ? given : randomUUID();
    },
    frameworkErrors: (error, request, reply) => void sendProblem(error, request, reply),
    // Requests Node.js cannot read, as the server answers them (without its security
    // headers, which the mock does not send).
    clientErrorHandler: createClientErrorHandler({ maxHeaderSize: 16_384, headers: {} }),
    // A path parameter over 255 characters is the operation's 414, as on the server.
    routerOptions: { maxParamLength: 16_384 },
    // HEAD for every GET, as on the server (forwarded to Prism as a GET).
    exposeHeadRoutes: true,
    // One line per request (below), not two.
    disableRequestLogging: true,
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(`${request.method} ${request.url} → ${reply.statusCode}`);
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
    // Prism's CORS headers, on the answers the contract layer gives itself too.
    if (!reply.hasHeader('access-control-allow-origin')) reply.headers(corsHeaders(request));
  });
  // A browser's preflight, answered as Prism answers it (before the 404 of a route the
  // spec does not declare: OPTIONS is in no operation).
  app.addHook('onRequest', async (request, reply) => {
    const method = request.headers['access-control-request-method'];
    if (request.method !== 'OPTIONS' || !request.headers.origin || !method) return;
    return reply
      .code(204)
      .headers({ ...corsHeaders(request), 'access-control-allow-methods': method })
      .send();
  });
  app.setValidatorCompiler(createContractValidation().validatorCompiler);
  const spec = loadSpec();
  // A method a path of the spec does not have: 405 with Allow, as the server answers.
  registerErrorHandling(app, allowedMethodsOf(operationsOf(spec)));
  registerJsonBodyParser(app);
  await app.register(pathParameterLimit);
  app.decorateRequest('principal', null);

  const handler = async ({ request }: { request: FastifyRequest }) =>
    forward(options.prism, request);
  // The spec itself and the problem types' documents are the server's own, not examples:
  // a client that follows a problem's `type` or reads /openapi.json gets the real thing.
  const { getOpenApiDocument, getOpenApiDocumentYaml, getProblemType } = createMetaHandlers({
    ping: async () => undefined,
    spec: publishedSpec(spec),
    metrics: async () => '',
  });
  const handlers = {
    ...Object.fromEntries(operationsOf(spec).map((operation) => [operation.operationId, handler])),
    getOpenApiDocument,
    getOpenApiDocumentYaml,
    getProblemType,
  } as unknown as Handlers;
  await registerContract(app, {
    spec,
    handlers,
    securityHandlers: {
      async bearerAuth(request) {
        checkBearerToken(request.headers.authorization);
      },
      // The mock has no metrics token of its own: any bearer token opens getMetrics.
      async metricsToken(request) {
        if (!/^Bearer \S+$/i.test(request.headers.authorization ?? '')) {
          throw new UnauthenticatedError('A valid metrics token is required.');
        }
      },
    },
  });
  return app;
}

// --- The command -------------------------------------------------------------------------

async function freePort(host: string): Promise<number> {
  const server = createServer().listen(0, host);
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (typeof address !== 'object' || !address) throw new Error('no free port');
  return address.port;
}

/** Starts `prism mock` on the internal port and resolves once it answers. */
async function startPrism(port: number): Promise<{ child: ChildProcess; url: string }> {
  const url = `http://127.0.0.1:${port}`;
  const cli = join(projectRoot, 'node_modules/@stoplight/prism-cli/dist/index.js');
  const child = spawn(
    process.execPath,
    [cli, 'mock', '--host', '127.0.0.1', '--port', String(port), bundledSpecPath],
    { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on(
    'data',
    (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000)),
  );
  child.stderr?.on(
    'data',
    (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000)),
  );
  let exited = false;
  child.once('exit', () => (exited = true));
  // However this process ends (a port in use, an error), Prism does not outlive it.
  process.once('exit', () => child.kill());
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`Prism stopped while starting:\n${output}`);
    try {
      await fetch(`${url}/health`);
      return { child, url };
    } catch {
      if (Date.now() > deadline) {
        child.kill();
        throw new Error(`Prism did not start within 60 s:\n${output}`);
      }
      await sleep(100);
    }
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '4010' },
      'prism-port': { type: 'string' },
    },
  });
  const started = Date.now();
  const prismPort = values['prism-port']
    ? Number(values['prism-port'])
    : await freePort('127.0.0.1');
  const [prism, app] = await Promise.all([
    startPrism(prismPort),
    buildMock({
      prism: `http://127.0.0.1:${prismPort}`,
      bodyLimit: Number(process.env.BODY_LIMIT_BYTES ?? DEFAULT_BODY_LIMIT),
      logger: {
        level: process.env.LOG_LEVEL ?? 'info',
        ...(process.stdout.isTTY
          ? {
              transport: {
                target: 'pino-pretty',
                options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname,reqId' },
              },
            }
          : {}),
      },
    }),
  ]);
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    prism.child.kill();
    await app.close().catch(() => undefined);
    process.exit(code);
  };
  prism.child.once('exit', (code) => {
    if (!stopping) {
      app.log.error({ code }, 'Prism stopped: the mock stops too');
      void stop(1);
    }
  });
  process.once('SIGINT', () => void stop(0));
  process.once('SIGTERM', () => void stop(0));
  const address = await app.listen({ host: values.host, port: Number(values.port) });
  app.log.info(
    { prism: prism.url, startedInMs: Date.now() - started },
    `Mock server listening on ${address} (the contract checked like the server; examples from Prism)`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
