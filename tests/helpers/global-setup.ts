import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded } from '../../src/db/embedded/open.js';

/**
 * The tests run on the PostgreSQL server named by TEST_DATABASE_URL, each test file on a
 * database of its own. Without it, on one embedded PostgreSQL server for the whole run (the
 * same server `npm start` runs, on a folder of its own), so a race test means the same on
 * a laptop as in CI. Test files and the processes they start inherit its address.
 */
export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  if (process.env.TEST_DATABASE_URL) return undefined;
  const dir = await mkdtemp(join(tmpdir(), 'api-tests-'));
  const embedded = await openEmbedded(dir, {
    label: 'npm test',
    exclusive: true,
    // Test files run in parallel, each with an app's pool and its own.
    poolMax: 25,
  });
  try {
    await embedded.ready;
  } catch (error) {
    await embedded.close();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  process.env.TEST_DATABASE_URL = `postgresql://postgres@localhost/postgres?host=${encodeURIComponent(dir)}`;
  return async () => {
    await embedded.close();
    await rm(dir, { recursive: true, force: true });
  };
}
