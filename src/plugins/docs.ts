import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/index.js';
import type { OpenApiDocument } from '../http/contract.js';
import {
  LIVE_DOCS_DOCUMENT_PATH,
  LIVE_DOCS_PATH,
  LIVE_DOCS_STYLE_PATH,
  liveDocsPage,
  liveDocsStyle,
  type LiveDocsDocument,
} from '../http/live-docs.js';

/**
 * The interactive reference at /docs: Swagger UI, served from this server's own files (no
 * CDN, no web font), rendering the published spec. It loads the spec from /openapi.json,
 * the operation that serves it (Swagger UI asks its plugin's /docs/json, which redirects
 * there), so the reference and the published document cannot differ. `/` redirects to it.
 * Beside it, /docs/live: the WebSocket's reference, a page this server makes from the
 * AsyncAPI document (src/http/live-docs.ts), which it also serves as it is.
 *
 * These routes are not operations: the spec lists them in `x-excluded-routes`.
 */

/** Where the plugin's own copies of the spec would be: the published ones instead. */
const published: Record<string, string> = {
  '/docs/json': '/openapi.json',
  '/docs/yaml': '/openapi.yaml',
};

/**
 * Only this server's own files and data: URLs, so a page that tried to reach a CDN or a
 * font host would fail in the browser, not quietly leak its readers' addresses. "Try it
 * out" may call the spec's `servers` URL when it is another origin (PUBLIC_API_URL).
 */
function contentSecurityPolicy(publicApiUrl: string | undefined): string {
  const connect = ["'self'", ...(publicApiUrl ? [new URL(publicApiUrl).origin] : [])];
  return [
    "default-src 'self'",
    "base-uri 'self'",
    `connect-src ${connect.join(' ')}`,
    "img-src 'self' data:",
    "font-src 'self'",
    "style-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "form-action 'self'",
    "frame-ancestors 'self'",
  ].join('; ');
}

export interface DocsOptions {
  /** The published document (src/spec.ts), the one /openapi.json serves. */
  document: OpenApiDocument;
  publicApiUrl: Config['publicApiUrl'];
  /** The WebSocket's contract, generated/asyncapi.json: /docs/live renders it. */
  liveDocument: LiveDocsDocument;
}

/**
 * Encapsulated: its swagger decorator and its hook stay with its routes. /openapi.json and
 * /openapi.yaml are operations of the spec (getOpenApiDocument, …), served by the contract.
 */
export const docs: FastifyPluginAsync<DocsOptions> = async (app, options) => {
  // On the page itself, the one HTML document this server sends (a stylesheet or a
  // script does not take a policy, and the problems of unknown assets declare none).
  const policy = contentSecurityPolicy(options.publicApiUrl);
  // Static mode: the document as given; the plugin builds nothing from the routes.
  await app.register(fastifySwagger, {
    mode: 'static',
    specification: { document: options.document as never },
  });
  // In a context of its own: the hook runs for the reference's routes, not for every
  // response of the API.
  await app.register(async (docs) => {
    docs.addHook('onSend', (_request, reply, payload, done) => {
      if (String(reply.getHeader('content-type')).startsWith('text/html')) {
        reply.header('content-security-policy', policy);
      }
      done(null, payload);
    });
    await docs.register(fastifySwaggerUi, {
      routePrefix: '/docs',
      uiConfig: {
        // Without the plugin's top bar (a box to load any other document).
        layout: 'BaseLayout',
        // Tags open, operations closed: every operation's summary at a glance.
        docExpansion: 'list',
        deepLinking: true,
        displayOperationId: true,
        // Never the online validator's badge (a request to another host).
        validatorUrl: null,
      },
      theme: { title: `${String(options.document.info.title)}: reference` },
      uiHooks: {
        onRequest: (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
          const target = published[request.routeOptions.url ?? ''];
          if (target === undefined) return done();
          void reply.redirect(target);
        },
      },
    });
    // In the same context: the same policy. Made once (the document does not change).
    const livePage = liveDocsPage(options.liveDocument);
    const liveDocument = JSON.stringify(options.liveDocument);
    docs.get(LIVE_DOCS_PATH, (_request, reply) => {
      void reply.type('text/html; charset=utf-8').send(livePage);
    });
    docs.get(LIVE_DOCS_STYLE_PATH, (_request, reply) => {
      void reply.type('text/css; charset=utf-8').send(liveDocsStyle);
    });
    docs.get(LIVE_DOCS_DOCUMENT_PATH, (_request, reply) => {
      void reply.type('application/json; charset=utf-8').send(liveDocument);
    });
  });
  app.get('/', (_request, reply) => reply.redirect('/docs'));
};
