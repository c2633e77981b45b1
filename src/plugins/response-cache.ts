import fp from 'fastify-plugin';
import type {
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler,
  onSendHookHandler,
  preHandlerAsyncHookHandler,
} from 'fastify';
import { noneMatchHolds } from '../http/entity-tags.js';
import {
  cacheTags,
  type CachedAnswer,
  type CachedOperation,
  type CacheRequest,
  type Lookup,
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
 * for every caller (only those are shared), and whether it shows view counts: `true`, kept
 * CACHE_VIEW_COUNT_LAG at most; or the tag of the one post's views (getPost), kept until
 * that lag has passed since a view came (src/lib/response-cache.ts: a late tag).
 */
const operations: Record<
  CachedOperation,
  {
    tags(request: CachedRequest): string[];
    shared(request: CachedRequest): boolean;
    views: boolean | ((request: CachedRequest) => string);
  }
> = {
  // A post as its author or an admin sees it may be a draft: only anonymous answers are kept.
  getPost: {
    tags: ({ params }) => [cacheTags.post(lower(params.id)), cacheTags.authors],
    shared: ({ principal }) => principal === null,
    views: ({ params }) => cacheTags.views(lower(params.id)),
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

/** A miss's fill, and how long its answer may be kept (ms). */
const fills = new WeakMap<FastifyRequest, { fill: FillFn; ttlMs: number }>();
type FillFn = (answer: CachedAnswer | null, ttlMs: number) => void;

/**
 * What a request's onRequest hook took of it for the cache: its key and tags, from the path
 * and query as they came (validation coerces them in place later; the same request gives
 * the same key either way), and, for a caller without credentials, its lookup already sent.
 */
interface Begun {
  request: CacheRequest;
  lookup: Promise<Lookup> | null;
}
const begun = new WeakMap<FastifyRequest, Begun>();

/** A lookup begun for a request that will not use it: its claim to fill is given back. */
function giveBack(lookup: Promise<Lookup> | null | undefined): void {
  void lookup?.then((found) => found.kind === 'miss' && found.fill(null, 0));
}

/** A request answered (or gone) before its preHandler used what its onRequest began. */
function abandon(request: FastifyRequest): void {
  giveBack(begun.get(request)?.lookup);
  begun.delete(request);
}

/**
 * The two hooks of a lookup: onRequest, first of the route's hooks, where an anonymous
 * caller's lookup goes to Redis at once, beside the rate limit's counter rather than one
 * round trip after it; and preHandler, the route's last (after validation, authentication,
 * the limits), which answers with what was kept if the caller may have it.
 */
function lookupHooks(cache: ResponseCache, viewCountLagMs: number) {
  const requestOf = (operation: CachedOperation, raw: CachedRequest): CacheRequest => {
    const definition = operations[operation];
    const { views } = definition;
    const cacheRequest = { operation, key: keyOf(raw), tags: definition.tags(raw) };
    return typeof views === 'function'
      ? { ...cacheRequest, late: { tag: views(raw), lagMs: viewCountLagMs } }
      : cacheRequest;
  };
  // Answers that show view counts without a late tag are kept the lag at most.
  const ttlOf = (operation: CachedOperation) =>
    operations[operation].views === true ? viewCountLagMs : Number.POSITIVE_INFINITY;
  const bypass: Lookup = { kind: 'bypass' };
  const lookupOf = (request: CacheRequest) => cache.lookup(request).catch(() => bypass);
  const begin =
    (operation: CachedOperation): onRequestHookHandler =>
    (request, _reply, done) => {
      if (request.method === 'GET') {
        const raw = request as unknown as CachedRequest;
        const definition = operations[operation];
        const cacheRequest = requestOf(operation, raw);
        const anonymous =
          request.headers.authorization === undefined &&
          definition.shared({ params: raw.params, query: raw.query, principal: null });
        begun.set(request, {
          request: cacheRequest,
          lookup: anonymous ? lookupOf(cacheRequest) : null,
        });
      }
      done();
    };
  const lookup: preHandlerAsyncHookHandler = async (request, reply) => {
    const started = begun.get(request);
    if (!started) return;
    begun.delete(request);
    const { operation } = started.request;
    const definition = operations[operation];
    if (!definition.shared(request as unknown as CachedRequest)) return giveBack(started.lookup);
    const found = await (started.lookup ?? lookupOf(started.request));
    if (found.kind === 'hit') return sendKept(request, reply, found.answer);
    if (found.kind === 'miss') fills.set(request, { fill: found.fill, ttlMs: ttlOf(operation) });
  };
  return { begin, lookup };
}

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
 * for each cached operation, the lookup's hooks (lookupHooks: begun at onRequest, answered
 * at the last preHandler), and an onSend hook that keeps the answer of a miss.
 */
export const responseCache = fp<ResponseCacheOptions>(
  async (app, options) => {
    const { cache } = options;
    const { begin, lookup } = lookupHooks(cache, options.viewCountLagMs);
    const keep: onSendHookHandler = (request, reply, payload, done) => {
      // Answered before its preHandler (a refusal: invalid, over a limit, shed).
      abandon(request);
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
      const ttlMs = status === 404 ? options.notFoundTtlMs : pending.ttlMs;
      pending.fill({ status, headers, body: payload }, ttlMs);
      done();
    };
    // A request that ended without a response (aborted): its waiters read for themselves.
    const release = (request: FastifyRequest) => {
      abandon(request);
      fills.get(request)?.fill(null, 0);
      fills.delete(request);
    };
    app.addHook('onRoute', (route) => {
      const operation = operationOfRoute(options.apiOperationOf, route);
      if (route.method !== 'GET' || !operation || !(operation in operations)) return;
      const cachedOperation = operation as CachedOperation;
      // The rate limits' hooks are in the route's onRequest already: this one goes first.
      route.onRequest = [begin(cachedOperation), ...[route.onRequest ?? []].flat()];
      route.preHandler = [...[route.preHandler ?? []].flat(), lookup];
      route.onSend = [...[route.onSend ?? []].flat(), keep];
      route.onRequestAbort = [
        ...[route.onRequestAbort ?? []].flat(),
        async (request: FastifyRequest) => release(request),
      ];
    });
  },
  { name: 'response-cache' },
);
