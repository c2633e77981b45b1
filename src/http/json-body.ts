import { isDeepStrictEqual } from 'node:util';
import {
  errorCodes,
  type FastifyInstance,
  type FastifyRequest,
  type preValidationHookHandler,
} from 'fastify';
import fp from 'fastify-plugin';
import { MalformedRequestError, ValidationError, escapePointer } from './errors.js';
import type { ProblemItem } from '../api-types.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The media types the route's request body may be sent as (set from the spec). */
    requestMediaTypes?: readonly string[];
  }
}

/**
 * The JSON media types of the spec's request bodies: JSON itself, and JSON merge patch
 * (RFC 7396) for updateUser. A route accepts those its request body declares, or JSON
 * alone when it declares none (a DELETE may still carry a body: it must be readable).
 */
const JSON_MEDIA_TYPES = ['application/json', 'application/merge-patch+json'] as const;
const DEFAULT_MEDIA_TYPES: readonly string[] = ['application/json'];

/** The media types the request's route accepts a body in. */
export function requestMediaTypesOf(request: FastifyRequest): readonly string[] {
  return request.routeOptions.config.requestMediaTypes ?? DEFAULT_MEDIA_TYPES;
}

/**
 * JSON bodies are parsed by Fastify's own parser, then checked in one walk for keys that
 * could change the prototype of an object (`__proto__`, and `constructor` holding a
 * `prototype`: Fastify's parser would refuse them as "not valid JSON", naming nothing) and
 * for text that cannot be stored as sent: PostgreSQL cannot hold U+0000, and a lone UTF-16
 * surrogate would be silently replaced by U+FFFD on the way to the database. Either is a
 * 400 VALIDATION_ERROR whose `errors` point at each. Refusing them here keeps the promise
 * "stored exactly, or a 400". So does decoding the bytes strictly: invalid UTF-8 would
 * otherwise become U+FFFD without a word. (JSON.parse makes `__proto__` an own property,
 * which changes nothing; the body is refused before anything could copy it.)
 *
 * Every JSON media type is read by these same rules. The parsers are shared by all
 * routes, so each refuses (415) a media type the request's route does not accept; any
 * other media type (text/plain, which Fastify parses by default, included) has no parser
 * and is a 415 too.
 */
export function registerJsonBodyParser(app: FastifyInstance): void {
  // The keys are checked below, where the refusal can name them.
  const parseJson = app.getDefaultJsonParser('ignore', 'ignore');
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  app.removeAllContentTypeParsers();
  for (const mediaType of JSON_MEDIA_TYPES) {
    app.addContentTypeParser(mediaType, { parseAs: 'buffer' }, (request, body, done) => {
      if (!requestMediaTypesOf(request).includes(mediaType)) {
        return done(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(), undefined);
      }
      let text: string;
      try {
        text = utf8.decode(body as Buffer);
      } catch {
        return done(new MalformedRequestError('The body is not valid UTF-8.'), undefined);
      }
      void parseJson(request, text, (error: Error | null, value?: unknown) => {
        if (error) return done(error, undefined);
        const issues = walk(value, '', [], prototypeKey);
        if (issues.length > 0) return done(bodyRefusal(issues), undefined);
        return done(null, value);
      });
    });
  }
  // fastify-openapi-glue warns at start-up about each media type of the spec that has no
  // parser, the responses' application/problem+json, application/yaml and the metrics'
  // text format included: each has one, that refuses it.
  app.addContentTypeParser(
    ['application/problem+json', 'application/yaml', 'text/plain; version=0.0.4; charset=utf-8'],
    (_request, _payload, done) => done(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(), undefined),
  );

  // Fastify applies a body schema keyed by media type only to bodies of that type, so a
  // request without a body (or a Content-Type) would reach the handler unchecked. A route
  // whose body types all share one schema gets it as the schema of every body instead;
  // one whose types differ would leave body-less requests unchecked, so it cannot start.
  app.addHook('onRoute', (route) => {
    const body = route.schema?.body as BodyByMediaType | undefined;
    if (!route.schema || !body?.content) return;
    const types = Object.keys(body.content);
    const schemas = Object.values(body.content).map((media) => media.schema);
    const [schema] = schemas;
    if (schemas.some((other) => !isDeepStrictEqual(other, schema))) {
      throw new Error(
        `${String(route.method)} ${route.url}: its request media types (${types.join(', ')}) ` +
          'have different schemas; give them one schema so every body is validated.',
      );
    }
    if (schema !== undefined) route.schema.body = schema;
    route.config = { ...route.config, requestMediaTypes: types };
  });
}

/**
 * The query is checked as the body is: text PostgreSQL cannot hold (U+0000; `?q=%00` was
 * an error of the database, a 400 naming no input) is refused before the schema, naming
 * the parameter.
 */
export function registerQueryTextCheck(app: FastifyInstance): void {
  const check: preValidationHookHandler = (request, _reply, done) => {
    const issues = unstorableText(request.query, '', []).map((issue): ProblemItem => ({
      ...issue,
      location: 'query',
    }));
    if (issues.length === 0) return done();
    done(new ValidationError('The query contains text that cannot be stored.', issues));
  };
  // Only on routes whose operation has query parameters (any other refuses a query
  // string it does not declare, by its own schema), as a callback hook: no promise.
  app.addHook('onRoute', (route) => {
    if (route.schema?.querystring === undefined) return;
    const hooks = route.preValidation;
    route.preValidation = hooks === undefined ? [check] : [...[hooks].flat(), check];
  });
}

/**
 * Both, at the root: the parsers replace Fastify's for every route, and the hooks reach
 * the operations' routes wherever they are registered.
 */
export const requestBodies = fp(
  async (app) => {
    registerJsonBodyParser(app);
    registerQueryTextCheck(app);
  },
  { name: 'request-bodies' },
);

type BodyByMediaType = { content?: Record<string, { schema?: unknown }> };

const NUL = '\u0000';

function checkString(text: string, pointer: string, issues: ProblemItem[]): void {
  if (text.includes(NUL)) {
    issues.push({
      location: 'body',
      pointer,
      message: 'must not contain the NUL character (U+0000)',
    });
  } else if (!text.isWellFormed()) {
    issues.push({
      location: 'body',
      pointer,
      message: 'must not contain unpaired UTF-16 surrogates',
    });
  }
}

const PROTOTYPE_MESSAGE = 'is not allowed: it could change the prototype of an object';

/** `__proto__`, or a `constructor` holding a `prototype`: what Fastify's parser refuses. */
function prototypeKey(key: string, item: unknown, pointer: string, issues: ProblemItem[]): void {
  if (key === '__proto__') {
    issues.push({ location: 'body', pointer, message: PROTOTYPE_MESSAGE });
  } else if (
    key === 'constructor' &&
    item !== null &&
    typeof item === 'object' &&
    Object.hasOwn(item, 'prototype')
  ) {
    issues.push({ location: 'body', pointer: `${pointer}/prototype`, message: PROTOTYPE_MESSAGE });
  }
}

function bodyRefusal(issues: ProblemItem[]): ValidationError {
  const keys = issues.filter((issue) => issue.message === PROTOTYPE_MESSAGE);
  if (keys.length === 0) {
    return new ValidationError('The body contains text that cannot be stored.', issues);
  }
  return new ValidationError(
    'The body has keys that could change the prototype of an object (`__proto__`, or `constructor` holding `prototype`): `errors` points at each.',
    issues,
  );
}

type KeyCheck = (key: string, item: unknown, pointer: string, issues: ProblemItem[]) => void;

function walk(
  value: unknown,
  pointer: string,
  issues: ProblemItem[],
  checkKey?: KeyCheck,
): ProblemItem[] {
  if (typeof value === 'string') {
    checkString(value, pointer, issues);
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => walk(item, `${pointer}/${index}`, issues, checkKey));
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const child = `${pointer}/${escapePointer(key)}`;
      checkKey?.(key, item, child, issues);
      checkString(key, child, issues);
      walk(item, child, issues, checkKey);
    }
  }
  return issues;
}

/** Every string (and key) in a parsed JSON value that cannot be stored faithfully. */
export function unstorableText(
  value: unknown,
  pointer: string,
  issues: ProblemItem[],
): ProblemItem[] {
  return walk(value, pointer, issues);
}
