import type { FastifyInstance } from 'fastify';
import { ValidationError } from './errors.js';
import type { ProblemItem } from './handler-types.js';

/**
 * JSON bodies are parsed by Fastify's own parser (which refuses __proto__ and constructor
 * poisoning), then checked for text that cannot be stored as sent: PostgreSQL cannot hold
 * U+0000, and a lone UTF-16 surrogate would be silently replaced by U+FFFD on the way to
 * the database. Refusing them here keeps the promise "stored exactly, or a 400".
 */
export function registerJsonBodyParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    ['application/json', 'application/problem+json'],
    { parseAs: 'string' },
    (request, body, done) => {
      parseJson(request, body as string, (error: Error | null, value?: unknown) => {
        if (error) return done(error, undefined);
        const issues = unstorableText(value, '', []);
        if (issues.length > 0) {
          return done(new ValidationError('The body contains text that cannot be stored.', issues), undefined);
        }
        return done(null, value);
      });
    },
  );
}

const NUL = '\u0000';

function checkString(text: string, pointer: string, issues: ProblemItem[]): void {
  if (text.includes(NUL)) {
    issues.push({ location: 'body', pointer, message: 'must not contain the NUL character (U+0000)' });
  } else if (!text.isWellFormed()) {
    issues.push({ location: 'body', pointer, message: 'must not contain unpaired UTF-16 surrogates' });
  }
}

/** Every string (and key) in a parsed JSON value that cannot be stored faithfully. */
export function unstorableText(value: unknown, pointer: string, issues: ProblemItem[]): ProblemItem[] {
  if (typeof value === 'string') {
    checkString(value, pointer, issues);
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => unstorableText(item, `${pointer}/${index}`, issues));
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const child = `${pointer}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      checkString(key, child, issues);
      unstorableText(item, child, issues);
    }
  }
  return issues;
}
