import { describe, expect, it } from 'vitest';
import { DEMO_PASSWORD, demoAdmin, demoPosts, demoUsers } from '../../scripts/seed-data.js';
import { codeBlocks, runShellBlock, useManualServer, type ShellRun } from './manual.js';
import { logIn, runScript } from './processes.js';

/**
 * The README's tour, run as a reader runs it: its own bash and curl commands against the
 * server on a real port (what README.md says, not a copy of it), first on a
 * new database, then again after `npm run db:seed`. Every request succeeds, except the
 * admin's before the seed (the block says they need it), and the seed's data is left as
 * it was.
 */

const THIS_FILE = 'tests/e2e/readme.test.ts';
const ADMIN_SECTION = '# as an admin';

/** README.md's tour: the shell block its comment says this file runs. */
function tourBlock(): string {
  const blocks = codeBlocks('README.md').filter(
    (block) => block.directive.kind === 'run by' && block.directive.test === THIS_FILE,
  );
  if (blocks.length !== 1) {
    throw new Error(`README.md has ${blocks.length} blocks marked "doc-test: run by ${THIS_FILE}"`);
  }
  return blocks[0]!.code;
}

const runTour = (base: string) => runShellBlock(tourBlock(), base);

/** What the admin API shows of the seed's accounts and their posts. */
async function seedData(base: string): Promise<unknown> {
  const login = await logIn(base, demoAdmin.email, DEMO_PASSWORD);
  expect(login.status).toBe(200);
  const { accessToken } = (await login.json()) as { accessToken: string };
  const get = async <T>(path: string): Promise<T> => {
    const response = await fetch(`${base}${path}`, {
      headers: { authorization: `Bearer ${accessToken}` },
    });
    expect(response.status, path).toBe(200);
    return (await response.json()) as T;
  };
  type Page<T> = { items: T[]; nextCursor: string | null };
  const all = async <T>(path: string): Promise<T[]> => {
    const items: T[] = [];
    for (let cursor: string | null = ''; cursor !== null;) {
      const separator = path.includes('?') ? '&' : '?';
      const page: Page<T> = await get<Page<T>>(
        `${path}${separator}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      items.push(...page.items);
      cursor = page.nextCursor;
    }
    return items;
  };
  const seeded = new Set([demoAdmin, ...demoUsers].map((account) => account.email));
  const accounts = (await all<{ id: string; email: string }>('/api/admin/users')).filter(
    (account) => seeded.has(account.email),
  );
  expect(accounts).toHaveLength(seeded.size);
  const posts = [];
  for (const account of accounts) {
    posts.push(
      ...(await all(`/api/posts?authorId=${account.id}`)),
      ...(await all(`/api/posts?status=draft&authorId=${account.id}`)),
    );
  }
  expect(posts).toHaveLength(demoPosts.length);
  return { accounts, posts };
}

function expectAnswered(run: ShellRun, { adminRefused }: { adminRefused: boolean }) {
  const log = `\n${run.output}`;
  expect(run.code, `bash exited ${run.code}${log}`).toBe(0);
  expect(run.exchanges.length, `answers of the block's ${run.curls} curl commands${log}`).toBe(
    run.curls,
  );
  // The admin's requests (the probes after them are for anybody).
  const admin = run.exchanges.filter(
    (e) => e.section.startsWith(ADMIN_SECTION) && e.path.startsWith('/api/'),
  );
  expect(admin.length, log).toBe(2);
  const failed = run.exchanges.filter(
    (e) => e.status >= 400 && !(adminRefused && admin.includes(e)),
  );
  expect(failed, `4xx and 5xx answers${log}`).toEqual([]);
  if (adminRefused) {
    // Before the seed there is no admin@example.com: its login and its token are refused.
    expect(
      admin.map((e) => e.status),
      log,
    ).toEqual([401, 401]);
  }
  // What the comments say: the conditional read answers 304 before the view, and the
  // ETag read then still holds for the delete (If-Match) after it.
  const bySlug = run.exchanges.filter((e) => e.path.startsWith('/api/posts/by-slug/'));
  expect(
    bySlug.map((e) => e.status),
    log,
  ).toEqual([200, 200, 304]);
  const deletions = run.exchanges.filter(
    (e) => e.method === 'DELETE' && e.path.startsWith('/api/posts/'),
  );
  expect(
    deletions.map((e) => e.status),
    log,
  ).toEqual([204]);
}

describe("the README's tour", () => {
  const manual = useManualServer('api-readme-');

  it('runs on a new database: every request succeeds but the admin part', async () => {
    expectAnswered(await runTour(manual.server.base), { adminRefused: true });
  }, 60_000);

  it('leaves nothing behind that npm run db:seed meets', async () => {
    const seed = runScript('db:seed', manual.database);
    expect(await seed.exited, seed.output()).toBe(0);
    const said = seed.output();
    for (const account of [...demoUsers, demoAdmin]) {
      expect(said, account.email).toMatch(new RegExp(`^created ${account.email}`, 'm'));
    }
    expect(said).not.toMatch(/^(exists|skipped)/m);
  }, 120_000);

  it('runs after npm run db:seed, every request succeeding, and leaves the seed data alone', async () => {
    const before = await seedData(manual.server.base);
    expectAnswered(await runTour(manual.server.base), { adminRefused: false });
    expect(await seedData(manual.server.base)).toEqual(before);
  }, 60_000);
});
