/**
 * npm run db:studio: Drizzle Studio on DATABASE_URL, or on the embedded database in
 * DATA_DIR through the socket of the process that owns it (this one, when nobody else
 * does): Studio never opens the folder itself, so it can run beside the server.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { loadConfig, readEnvironment } from '../src/config/index.js';
import { openEmbedded } from '../src/db/embedded/open.js';
import { exitExplained } from '../src/db/failures.js';
import { projectRoot } from '../src/paths.js';

const env = readEnvironment();
const config = loadConfig(env, 'script');

let databaseUrl = config.databaseUrl;
let release: () => Promise<void> = async () => undefined;
if (!databaseUrl) {
  const failed = exitExplained('npm run db:studio');
  const access = await openEmbedded(config.dataDir, {
    label: 'npm run db:studio',
    exclusive: false,
    poolMax: config.db.poolMax,
  }).catch(failed);
  release = () => access.close();
  await access.ready.catch(async (error: unknown) => {
    await access.close();
    failed(error);
  });
  databaseUrl = `postgres://postgres@localhost:${access.port}/postgres?host=${encodeURIComponent(access.host)}`;
  console.log(
    access.owner
      ? `The embedded database in ${access.host}, through process ${access.owner.pid} (${access.owner.owner}).`
      : `The embedded database in ${access.host}, served by this process until Studio stops.`,
  );
}

const studio = spawn(
  process.execPath,
  [join(projectRoot, 'node_modules/drizzle-kit/bin.cjs'), 'studio', ...process.argv.slice(2)],
  { stdio: 'inherit', cwd: projectRoot, env: { ...env, DATABASE_URL: databaseUrl } },
);
// Ctrl-C reaches Studio too (same terminal); this process waits for it to stop, then lets go.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => studio.kill(signal));
}
const code = await new Promise<number>((resolve) => {
  studio.once('exit', (exitCode) => resolve(exitCode ?? 1));
  studio.once('error', () => resolve(1));
});
await release();
process.exit(code);
