import { ConfigError } from '../config/index.js';
import { StartupError } from './connection-errors.js';
import { EmbeddedUnavailableError } from './embedded/binaries.js';
import { EmbeddedFolderError, EmbeddedInUseError } from './embedded/open.js';

/**
 * The message of a failure to open the database that explains itself (what happened and
 * what to do), or null for anything else: a fault whose stack trace says more.
 */
export function explainedFailure(error: unknown): string | null {
  const explained =
    error instanceof ConfigError ||
    error instanceof StartupError ||
    error instanceof EmbeddedInUseError ||
    error instanceof EmbeddedFolderError ||
    error instanceof EmbeddedUnavailableError;
  return explained ? error.message : null;
}

/**
 * For scripts, as a promise's catch: ends the process with one line, not a stack trace,
 * when the failure explains itself; rethrows anything else.
 */
export function exitExplained(name: string): (error: unknown) => never {
  return (error) => {
    const message = explainedFailure(error);
    if (message === null) throw error;
    console.error(`${name}: ${message}`);
    process.exit(1);
  };
}
