import { Writable } from 'node:stream';

export type LogLine = Record<string, unknown>;

/**
 * A stream for a JSON logger that keeps every line it is given, parsed, in `lines` (the
 * caller's array when given; empty it with `lines.length = 0` between steps).
 */
export function logCapture(lines: LogLine[] = []): { lines: LogLine[]; stream: Writable } {
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
        lines.push(JSON.parse(line) as LogLine);
      }
      done();
    },
  });
  return { lines, stream };
}
