import fp from 'fastify-plugin';
import type {
  FastifyReply,
  FastifyRequest,
  onSendHookHandler,
  preHandlerAsyncHookHandler,
} from 'fastify';
import { noneMatchHolds } from '../http/entity-tags.js';
import {
  cacheTags,
  type CachedAnswer,
  type CachedOperation,
  type ResponseCache,
} from '../lib/response-cache.js';
import { operationOfRoute, type ApiOperationOf } from './api-operations.js';

export interface ResponseCacheOptions {
  cache: ResponseCache;
  apiOperationOf: ApiOperationOf;
  /** The longest an answer that shows view counts is kept: how late a view count may be. */
  viewCountLagMs: number;
  /** How long a 404 is kept. */
  notFoundTtlMs: number;
}

type Values = Record<string, unknown>;
interface CachedRequest {
  params: Values;
  query: Values;
  principal: unknown;
}

/**
 * The cached operations: the tags their answers depend on, whether an answer is the same
 * for every caller (only those are shared), and whether it shows view counts.
 */
const operations: Record<
  CachedOperation,
  {
    tags(request: CachedRequest): string[];
    shared(request: CachedRequest): boolean;
    views: boolean;
  }
> = {
  // A post as its author or an admin sees it may be a draft: only anonymous answers are kept.
  getPost: {
    tags: ({ params }) => [cacheTags.post(lower(params.id)), cacheTags.authors],
    shared: ({ principal }) => principal === null,
    views: true,
  },
  getPostBySlug: {
    tags: ({ params }) => [cacheTags.slug(String(params.slug)), cacheTags.authors],
    shared: ({ principal }) => principal === null,
    views: true,
  },
  // Published posts are listed alike for everybody; drafts only to their author.
  listPosts: {
    tags: () => [cacheTags.posts, cacheTags.authors],
    shared: ({ query }) => query.status !== 'draft',
    views: true,
  },
  listUserPosts: {
    tags: ({ params }) => [cacheTags.posts, cacheTags.authors, cacheTags.user(lower(params.id))],
    shared: ({ query }) => query.status !== 'draft',
    views: true,
  },
  getUser: {
    tags: ({ params }) => [cacheTags.user(lower(params.id))],
    shared: () => true,
    views: false,
  },
  listUsers: { tags: () => [cacheTags.users], shared: () => true, views: false },
};

/** Ids as PostgreSQL gives them (a change names them so). */
const lower = (value: unknown) => String(value).toLowerCase();

/** Path and query values in one canonical string: the same request, the same key. */
function keyOf({ params, query }: CachedRequest): string {
  const sorted = (values: Values) =>
    Object.keys(values)
      .sort()
      .map((name) => [name, values[name]]);
  return JSON.stringify([sorted(params), sorted(query)]);
}

/** The headers of a representation, kept with it (not the request's own: ids, limits). */
const KEPT_HEADERS = ['content-type', 'etag', 'cache-control'] as const;

const fills = new WeakMap<FastifyRequest, { fill: FillFn; views: boolean }>();
type FillFn = (answer: CachedAnswer | null, ttlMs: number) => void;

function sendKept(request: FastifyRequest, reply: FastifyReply, answer: CachedAnswer) {
  const etag = answer.headers.etag;
  if (answer.status === 200 && etag && !noneMatchHolds(request.headers['if-none-match'], etag)) {
    const { 'content-type': _type, ...validators } = answer.headers;
    return reply.code(304).headers(validators).send();
  }
  return reply.code(answer.status).headers(answer.headers).send(answer.body);
}

/**
 * The response cache at the HTTP surface (src/lib/response-cache.ts keeps the answers):
 * for each cached operation, a preHandler (after validation and authentication) that
 * answers from the cache, and an onSend hook that keeps the answer of a miss.
 */
export const responseCache = fp<ResponseCacheOptions>(
  async (app, options) => {
    const { cache } = options;
    const lookup =
      (operation: CachedOperation): preHandlerAsyncHookHandler =>
      async (request, reply) => {
        if (request.method !== 'GET') return;
        const cached = request as unknown as CachedRequest;
        const definition = operations[operation];
        if (!definition.shared(cached)) return;
        const found = await cache.lookup({
          operation,
          key: keyOf(cached),
          tags: definition.tags(cached),
        });
        if (found.kind === 'hit') return sendKept(request, reply, found.answer);
        if (found.kind === 'miss')
          fills.set(request, { fill: found.fill, views: definition.views });
      };
    const keep: onSendHookHandler = (request, reply, payload, done) => {
      const pending = fills.get(request);
      if (!pending) return done();
      fills.delete(request);
      const status = reply.statusCode;
      if ((status !== 200 && status !== 404) || typeof payload !== 'string') {
        pending.fill(null, 0);
        return done();
      }
      const headers: Record<string, string> = {};
      for (const name of KEPT_HEADERS) {
        const value = reply.getHeader(name);
        if (typeof value === 'string') headers[name] = value;
      }
      // Never shared, whatever the request looked like: an answer its handler calls private.
      if (headers['cache-control']?.startsWith('private')) {
        pending.fill(null, 0);
        return done();
      }
      const ttlMs =
        status === 404
          ? options.notFoundTtlMs
          : pending.views
            ? options.viewCountLagMs
            : Number.POSITIVE_INFINITY;
      pending.fill({ status, headers, body: payload }, ttlMs);
      done();
    };
    // A request that ended without a response (aborted): its waiters read for themselves.
    const release = (request: FastifyRequest) => {
      fills.get(request)?.fill(null, 0);
      fills.delete(request);
    };
    app.addHook('onRoute', (route) => {
      const operation = operationOfRoute(options.apiOperationOf, route);
      if (route.method !== 'GET' || !operation || !(operation in operations)) return;
      const cachedOperation = operation as CachedOperation;
      route.preHandler = [...[route.preHandler ?? []].flat(), lookup(cachedOperation)];
      route.onSend = [...[route.onSend ?? []].flat(), keep];
      route.onRequestAbort = [
        ...[route.onRequestAbort ?? []].flat(),
        async (request: FastifyRequest) => release(request),
      ];
    });
  },
  { name: 'response-cache' },
);
