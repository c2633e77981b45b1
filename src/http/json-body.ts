import { errorCodes, type FastifyInstance } from 'fastify';
import { MalformedRequestError, ValidationError, escapePointer } from './errors.js';
import type { ProblemItem } from '../api-types.js';

/**
 * JSON bodies are parsed by Fastify's own parser (which refuses __proto__ and constructor
 * poisoning), then checked for text that cannot be stored as sent: PostgreSQL cannot hold
 * U+0000, and a lone UTF-16 surrogate would be silently replaced by U+FFFD on the way to
 * the database. Refusing them here keeps the promise "stored exactly, or a 400". So does
 * decoding the bytes strictly: invalid UTF-8 would otherwise become U+FFFD without a word.
 *
 * application/json is the only request media type of the spec, so it is the only body
 * read: any other one (text/plain, which Fastify parses by default, included) is a 415.
 */
export function registerJsonBodyParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      return done(new MalformedRequestError('The body is not valid UTF-8.'), undefined);
    }
    void parseJson(request, text, (error: Error | null, value?: unknown) => {
      if (error) return done(error, undefined);
      const issues = unstorableText(value, '', []);
      if (issues.length > 0) {
        return done(
          new ValidationError('The body contains text that cannot be stored.', issues),
          undefined,
        );
      }
      return done(null, value);
    });
  });
  // fastify-openapi-glue warns at start-up about each media type of the spec that has no
  // parser, the responses' application/problem+json included: it has one, that refuses it.
  app.addContentTypeParser('application/problem+json', (_request, _payload, done) =>
    done(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(), undefined),
  );

  // Fastify applies a body schema keyed by media type only to bodies of that type, so a
  // request without a body (or a Content-Type) would reach the handler unchecked. A route
  // whose one body type is JSON gets its schema as the schema of every body instead.
  app.addHook('onRoute', (route) => {
    const body = route.schema?.body as BodyByMediaType | undefined;
    const types = Object.keys(body?.content ?? {});
    const json = body?.content?.['application/json']?.schema;
    if (route.schema && json !== undefined && types.length === 1) route.schema.body = json;
  });
}

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

/** Every string (and key) in a parsed JSON value that cannot be stored faithfully. */
export function unstorableText(
  value: unknown,
  pointer: string,
  issues: ProblemItem[],
): ProblemItem[] {
  if (typeof value === 'string') {
    checkString(value, pointer, issues);
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => unstorableText(item, `${pointer}/${index}`, issues));
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const child = `${pointer}/${escapePointer(key)}`;
      checkString(key, child, issues);
      unstorableText(item, child, issues);
    }
  }
  return issues;
}
