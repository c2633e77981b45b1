/**
 * Run as a process of its own (by open.ts): makes a new PGlite data folder, then exits.
 *
 * initdb grows PGlite's WebAssembly memory to about 800 MB, which a process never gets
 * back (a worker thread still holds ~320 MB after it ends); this process gives it all back
 * to the system by exiting, while the owner opens the finished folder at ~170 MB.
 */
import { PGlite } from '@electric-sql/pglite';

const target = process.argv[2];
if (!target) {
  console.error('usage: initdb-process <empty folder>');
  process.exit(2);
}
const db = await PGlite.create({ dataDir: target });
await db.close();
