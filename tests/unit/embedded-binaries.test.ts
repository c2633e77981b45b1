import { describe, expect, it } from 'vitest';
import { EmbeddedUnavailableError, locate } from '../../src/db/embedded/binaries.js';

describe('the embedded database on a machine without its PostgreSQL', () => {
  it('names the platform that has no build, and DATABASE_URL', async () => {
    const error = await locate('aix-ppc64', () => Promise.reject(new Error('never loaded'))).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(EmbeddedUnavailableError);
    expect((error as Error).message).toMatch(/no PostgreSQL build for aix-ppc64: set DATABASE_URL/);
  });

  it('says the binaries were not installed (a production image), and DATABASE_URL', async () => {
    const error = await locate('linux-x64', () =>
      Promise.reject(
        Object.assign(new Error('Cannot find package'), { code: 'ERR_MODULE_NOT_FOUND' }),
      ),
    ).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EmbeddedUnavailableError);
    expect((error as Error).message).toMatch(/is not installed.*--omit=optional.*set DATABASE_URL/);
  });
});
