import { InvalidInputError, fail, ok, type Outcome } from '../errors.js';
import { uuidPattern } from './uuid.js';

/**
 * A position in a list ordered by (a time, id): the last item of the previous page. `at` is
 * the time the list is ordered by (users: createdAt; published posts: publishedAt).
 */
export interface Position {
  at: string;
  id: string;
}

// Years 0001 to 9999: PostgreSQL has no year 0.
const isoMillis = /^(?!0000)\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Cursors are opaque to clients: base64url of "<at>|<id>". */
export function encodeCursor(position: Position): string {
  return Buffer.from(`${position.at}|${position.id}`, 'utf8').toString('base64url');
}

/** The position a cursor stands for, or null when this server never gave it out. */
export function decodeCursor(cursor: string): Position | null {
  const [at, id, ...rest] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  if (
    rest.length > 0 ||
    !at ||
    !id ||
    !isoMillis.test(at) ||
    // Date rolls 30 February over to 2 March; a real instant survives the round trip.
    Number.isNaN(Date.parse(at)) ||
    new Date(at).toISOString() !== at ||
    !uuidPattern.test(id)
  ) {
    return null;
  }
  return { at, id };
}

/**
 * Where a page request starts: null for the first page (no cursor), the cursor's position,
 * or, for a cursor this server never gave out, the error that names it.
 */
export function positionOf(
  cursor: string | undefined,
): Outcome<Position | null, InvalidInputError> {
  if (cursor === undefined) return ok(null);
  const position = decodeCursor(cursor);
  return position
    ? ok(position)
    : fail(
        new InvalidInputError(
          'cursor',
          'is not a valid cursor',
          'The cursor is not one this server gave out.',
        ),
      );
}
