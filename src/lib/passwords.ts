import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import bcrypt from 'bcryptjs';
import type { Piscina } from 'piscina';
import { InvalidInputError } from '../errors.js';
import type { HashTask } from './hash-worker.js';

/** bcrypt reads at most 72 bytes; a longer password would be silently cut. */
export const MAX_PASSWORD_BYTES = 72;

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, hash: string): Promise<boolean>;
  /** Spends the time of one verify, for logins of unknown accounts (no timing oracle). */
  verifyNothing(password: string): Promise<void>;
  /** A hash made with a lower cost than the configured one, worth redoing at the next login. */
  needsRehash(hash: string): boolean;
  /** Stops the worker threads. */
  close(): Promise<void>;
}

export interface HasherOptions {
  /** bcrypt's cost factor: each step doubles the work. */
  cost: number;
  /** Worker threads that run bcrypt. */
  threads: number;
  /**
   * How much lower than the event loop the threads run (nice(2), 0 to 19; Linux, through
   * piscina's optional @napi-rs/nice, and ignored where that is missing).
   */
  nice?: number;
}

/** Null when bcrypt can take the password whole; else the error naming the field. */
export function passwordTooLong(password: string, field = 'password'): InvalidInputError | null {
  return Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES
    ? new InvalidInputError(
        field,
        `must be at most ${MAX_PASSWORD_BYTES} bytes in UTF-8`,
        'The password is too long.',
      )
    : null;
}

// The worker is the sibling module with this module's own extension: .ts when run from the
// sources (a worker thread then needs tsx's loader, which the main thread may have through
// a test runner instead), .js from .start/ or dist/.
const ownExtension = extname(fileURLToPath(import.meta.url));
const workerFile = new URL(`./hash-worker${ownExtension}`, import.meta.url).href;
// Threads inherit the process's own flags when given none (tsx's loader included, under
// `npm run dev`); passing them explicitly would be refused for V8 flags.
const workerExecArgv =
  ownExtension === '.ts' && !process.execArgv.some((arg) => arg.includes('tsx'))
    ? ['--import', 'tsx']
    : undefined;

/**
 * What unknown accounts' logins are compared with. A compare costs what the hash's cost
 * factor says, whatever its salt and digest, so a well-formed hash of that cost serves;
 * hashing one at start-up took 0.1 to 0.3 s.
 */
export function dummyHashFor(cost: number): string {
  return `$2b$${String(cost).padStart(2, '0')}$${'.'.repeat(53)}`;
}

export function createPasswordHasher({ cost, threads, nice = 0 }: HasherOptions): PasswordHasher {
  const dummyHash = dummyHashFor(cost);
  // Loaded and started with the first logins, not with the server (whose start is what a
  // developer waits for); the threads then stay, since starting one costs more than a hash.
  let pool: Promise<Piscina<HashTask, string | boolean>> | undefined;
  const run = async (task: HashTask) => {
    pool ??= import('piscina').then(
      ({ Piscina: Pool }) =>
        new Pool<HashTask, string | boolean>({
          filename: workerFile,
          ...(workerExecArgv ? { execArgv: workerExecArgv } : {}),
          minThreads: 0,
          maxThreads: threads,
          idleTimeout: Number.POSITIVE_INFINITY,
          // When the CPU is short, a login can wait a few milliseconds more; the requests
          // the event loop serves meanwhile should not wait for bcrypt.
          niceIncrement: nice,
        }),
    );
    return (await pool).run(task);
  };
  const compare = async (password: string, hash: string) =>
    (await run({ op: 'compare', password, hash })) === true;
  return {
    hash: async (password) => String(await run({ op: 'hash', password, cost })),
    verify: async (password, hash) => {
      // bcrypt ignores every byte after the 72nd, so a longer password would match the one
      // stored under its first 72 bytes. It is never an account's password (sign-up refuses
      // it); it is still compared, so that refusing it takes as long as any wrong password.
      const fits = Buffer.byteLength(password, 'utf8') <= MAX_PASSWORD_BYTES;
      const matches = await compare(password, hash);
      return fits && matches;
    },
    verifyNothing: async (password) => {
      await compare(password, dummyHash);
    },
    needsRehash: (hash) => bcrypt.getRounds(hash) < cost,
    close: async () => {
      await (await pool)?.destroy();
    },
  };
}
