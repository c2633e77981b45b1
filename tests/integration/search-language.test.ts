import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { setSearchLanguage } from '../../src/db/search.js';
import { TEST_JWT_SECRET, signUpAndLogin, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { unique } from '../helpers/values.js';

/**
 * SEARCH_LANGUAGE: `npm run db:search-language` (setSearchLanguage) makes the search column
 * of posts follow the setting; the server only checks it, refusing to start on a mismatch,
 * and searches use the same configuration, so a stemming language finds other forms of a
 * word. Each app here runs on the same database, one after the other.
 */

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
}, 60_000);
afterAll(async () => {
  await db.drop();
});

async function appWith(language: string | undefined): Promise<FastifyInstance> {
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    JWT_SECRET: TEST_JWT_SECRET,
    RATE_LIMIT_AUTH_MAX: '100000',
    ...(language ? { SEARCH_LANGUAGE: language } : {}),
    DATABASE_URL: db.url,
  });
  const app = await buildApp(config);
  try {
    await app.ready();
  } catch (error) {
    await app.close();
    throw error;
  }
  return app;
}

async function searchIds(app: FastifyInstance, q: string): Promise<string[]> {
  const res = await app.inject({ method: 'GET', url: '/api/posts', query: { q, limit: '100' } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<{ items: { id: string }[] }>().items.map((item) => item.id);
}

async function columnExpression(): Promise<string> {
  const [row] = await db.sql(
    sql`select pg_get_expr(d.adbin, d.adrelid) as e
      from pg_attrdef d join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
      where d.adrelid = 'posts'::regclass and a.attname = 'search'`,
  );
  return String(row?.e);
}

describe('SEARCH_LANGUAGE', () => {
  it('rebuilds the search column for the language, and back, keeping every post', async () => {
    const word = unique('zq');
    let postId: string;

    const simple = await appWith(undefined);
    try {
      const t: TestApp = { app: simple, db, inject: (options) => simple.inject(options) };
      const author = await signUpAndLogin(t);
      const created = await simple.inject({
        method: 'POST',
        url: '/api/posts',
        headers: author.auth,
        payload: { title: `Notes ${word}`, content: 'She was running the posts of the blogs.' },
      });
      postId = created.json<{ id: string }>().id;
      await simple.inject({
        method: 'POST',
        url: `/api/posts/${postId}/publish`,
        headers: author.auth,
      });
      expect(await columnExpression()).toContain("'simple'::regconfig");
      // 'simple' matches words as written: "run" is not "running".
      expect(await searchIds(simple, `${word} running`)).toEqual([postId]);
      expect(await searchIds(simple, `${word} run`)).toEqual([]);
    } finally {
      await simple.close();
    }

    // The server changes nothing itself: it refuses to start, naming the command.
    await expect(appWith('english')).rejects.toThrow(
      /SEARCH_LANGUAGE=english, but the search index of posts is built for simple\. Run npm run db:search-language/,
    );
    expect(await columnExpression()).toContain("'simple'::regconfig");

    expect(await setSearchLanguage(db.database, 'english')).toBe('rebuilt');
    expect(await setSearchLanguage(db.database, 'english')).toBe('unchanged');
    const english = await appWith('english');
    try {
      expect(await columnExpression()).toContain("'english'::regconfig");
      // Stemmed: "run" finds "running", "blog" finds "blogs"; "the" is a stop word.
      expect(await searchIds(english, `${word} run blog`)).toEqual([postId]);
    } finally {
      await english.close();
    }
    await expect(appWith('simple')).rejects.toThrow(/built for english/);

    expect(await setSearchLanguage(db.database, 'simple')).toBe('rebuilt');
    const back = await appWith('simple');
    try {
      expect(await columnExpression()).toContain("'simple'::regconfig");
      expect(await searchIds(back, `${word} run`)).toEqual([]);
      expect(await searchIds(back, `${word} blogs`)).toEqual([postId]);
    } finally {
      await back.close();
    }
  });

  it('refuses to start, and to set, a configuration the database does not have, naming those it has', async () => {
    const message = /SEARCH_LANGUAGE=klingon is not a text search configuration.*english.*simple/s;
    await expect(appWith('klingon')).rejects.toThrow(message);
    await expect(setSearchLanguage(db.database, 'klingon')).rejects.toThrow(message);
    expect(await columnExpression()).toContain("'simple'::regconfig");
  });

  it('rebuilds once when several set it at the same moment, keeping every post', async () => {
    const [{ n: before }] = (await db.sql(sql`select count(*)::int as n from posts`)) as [
      { n: number },
    ];
    const outcomes = await Promise.all(
      [1, 2, 3].map(() => setSearchLanguage(db.database, 'english')),
    );
    expect(outcomes.sort()).toEqual(['rebuilt', 'unchanged', 'unchanged']);
    expect(await db.sql(sql`select count(*)::int as n from posts`)).toEqual([{ n: before }]);
    expect(await setSearchLanguage(db.database, 'simple')).toBe('rebuilt');
  });
});
