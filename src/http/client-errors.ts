import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Problem } from '../api-types.js';
import { AppError, MalformedRequestError } from './errors.js';
import { problemTypeOf, problemTypeUri } from './problem-types.js';

/**
 * Requests Node.js refuses before Fastify sees them, answered as problems like any other
 * (x-unrouted-responses): a request line or headers that are not HTTP/1.1 (400), a request
 * not received within HEADERS_TIMEOUT or REQUEST_TIMEOUT (408), chunk extensions larger
 * than Node.js takes (413), a request line and headers over MAX_HEADER_SIZE (431). Node's
 * own answers (and Fastify's default for them) are plain JSON or no body at all, without
 * X-Request-Id or the security headers.
 *
 * Nothing of the request can be trusted here, so nothing of it is echoed: the problem has
 * no `instance`, and the request id is always a new one (a client's X-Request-Id, if the
 * headers got that far, was never read). The line logged at info carries it.
 */

type ClientError = Error & { code?: string };

/** A parser error's reason, when it is one of llhttp's own sentences (nothing of the request). */
function parseErrorReason(error: ClientError): string | undefined {
  const reason = /^Parse Error: ([A-Za-z ,'-]{1,100})$/.exec(error.message)?.[1];
  return reason === undefined ? undefined : reason.charAt(0).toLowerCase() + reason.slice(1);
}

function appErrorOf(error: ClientError, maxHeaderSize: number): AppError {
  const problem = (
    status: number,
    code: 'REQUEST_TIMEOUT' | 'HEADERS_TOO_LARGE' | 'PAYLOAD_TOO_LARGE',
    detail: string,
  ) => new AppError(status, code, problemTypeOf(code).title, detail);
  switch (error.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return problem(
        408,
        'REQUEST_TIMEOUT',
        'The request did not arrive in time: send its headers and body at once, without pausing.',
      );
    case 'HPE_HEADER_OVERFLOW':
      return problem(
        431,
        'HEADERS_TOO_LARGE',
        `The request line and headers are larger than the server takes (${maxHeaderSize} bytes).`,
      );
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return problem(
        413,
        'PAYLOAD_TOO_LARGE',
        'The chunk extensions of the body are larger than the server takes.',
      );
    default: {
      const reason = parseErrorReason(error);
      return new MalformedRequestError(
        `The request is not valid HTTP/1.1${reason === undefined ? '' : ` (${reason})`}.`,
      );
    }
  }
}

/** The HTTP/1.1 text of a problem answer, the connection closed after it. */
function answerText(error: AppError, requestId: string, headers: Record<string, string>): string {
  const problem: Problem = {
    type: problemTypeUri(error.code),
    title: error.title,
    status: error.status,
    detail: error.message,
    code: error.code,
  };
  const body = JSON.stringify(problem);
  const lines = [
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    'Content-Type: application/problem+json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    `X-Request-Id: ${requestId}`,
    `Date: ${new Date().toUTCString()}`,
    'Connection: close',
  ];
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

/**
 * Fastify's `clientErrorHandler`: `headers` are those every response carries (helmet's,
 * src/plugins/security-headers.ts).
 */
export function createClientErrorHandler(options: {
  maxHeaderSize: number;
  headers: Readonly<Record<string, string>>;
}): (this: FastifyInstance, error: ClientError, socket: Socket) => void {
  const headers = { ...options.headers };
  return function clientErrorHandler(error, socket) {
    // The client has gone: nobody to answer (Node's and Fastify's rule).
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const appError = appErrorOf(error, options.maxHeaderSize);
    const requestId = randomUUID();
    this.log.info(
      { requestId, status: appError.status, code: appError.code, cause: error.code },
      appError.message,
    );
    // As Node.js does: no answer once a response on this connection has begun.
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && inFlight?.headersSent !== true) {
      socket.write(answerText(appError, requestId, headers));
    }
    socket.destroy(error);
  };
}

/**
 * The path a request without Host is routed to (rewriteUrl in app.ts): no route has it
 * (a client cannot send a NUL character in a request line), so it reaches the 404 handler,
 * which answers 400 (src/http/error-handler.ts). Node.js would answer such a request itself,
 * with an empty 400, so the server tells it not to (`requireHostHeader: false`).
 */
export const HOSTLESS_PATH = '/\u0000no-host';

/** Fastify's `rewriteUrl`: an HTTP/1.1 request without Host goes to HOSTLESS_PATH. */
export function routeHostless(request: IncomingMessage): string {
  const url = request.url ?? '/';
  return request.headers.host === undefined && request.httpVersion === '1.1' ? HOSTLESS_PATH : url;
}
