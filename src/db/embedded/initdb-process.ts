/**
 * Run as a process of its own (by open.ts): makes a new PGlite data folder, then exits.
 *
 * initdb grows PGlite's WebAssembly memory to about 800 MB, which a process never gets
 * back (a worker thread still holds ~320 MB after it ends); this process gives it all back
 * to the system by exiting, while the owner opens the finished folder at ~170 MB.
 *
 * The folder is a copy of the install's template when there is one (template.ts); else
 * initdb makes it, and a dump of it becomes the template for the next new folder.
 *
 *   initdb-process <empty folder>   make a data folder
 *   initdb-process --template       make only the template, if missing (npm's postinstall)
 */
import { PGlite } from '@electric-sql/pglite';
import { readTemplate, templatePath, writeTemplate } from './template.js';

const target = process.argv[2];
if (!target) {
  console.error('usage: initdb-process <empty folder> | --template');
  process.exit(2);
}

const template = await readTemplate();
if (target === '--template') {
  if (!template) {
    const db = await PGlite.create();
    await writeTemplate(await db.dumpDataDir('gzip'));
    await db.close();
    console.log(`embedded database template: ${templatePath}`);
  }
} else {
  const db = await PGlite.create({
    dataDir: target,
    ...(template ? { loadDataDir: template } : {}),
  });
  // The template only saves time: a folder it cannot be written to is no reason to fail.
  if (!template) await writeTemplate(await db.dumpDataDir('gzip')).catch(() => undefined);
  await db.close();
}
