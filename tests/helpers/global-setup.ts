import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import type { TestProject } from 'vitest/node';
import { migrationsFolder } from '../../src/paths.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A dump of a migrated, empty embedded database (without TEST_DATABASE_URL only). */
    pgliteTemplate: ArrayBuffer | null;
  }
}

/**
 * Without TEST_DATABASE_URL every test file gets its own embedded database. Creating one
 * takes seconds; loading a dump of one made and migrated here once takes a fraction.
 */
export default async function setup(project: TestProject): Promise<void> {
  if (process.env.TEST_DATABASE_URL) {
    project.provide('pgliteTemplate', null);
    return;
  }
  const client = await PGlite.create();
  await migrate(drizzle({ client }), { migrationsFolder });
  const dump = await client.dumpDataDir('none');
  await client.close();
  project.provide('pgliteTemplate', await dump.arrayBuffer());
}
