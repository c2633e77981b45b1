import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { components } from '../../generated/api.js';
import { signUpAndLogin, useTestApp } from '../helpers/app.js';
import { postCalls } from '../helpers/posts.js';
import { expectProblem, expectValidationError } from '../helpers/problems.js';
import { unique } from '../helpers/values.js';

type Post = components['schemas']['Post'];
type Headers = Record<string, string>;

const t = useTestApp();

const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';
const POST_KEYS = [
  'author',
  'authorId',
  'content',
  'createdAt',
  'id',
  'publishedAt',
  'slug',
  'title',
  'updatedAt',
  'viewCount',
];

const { createPost, getPost, getPostBySlug, deletePost } = postCalls(t);

/** A new post of this author, through the API; a draft unless `published`. */
async function postOf(auth: Headers, options: { published?: boolean } = {}): Promise<Post> {
  const res = await createPost({ title: `Post ${unique()}`, content: 'Some words.' }, auth);
  expect(res.statusCode, res.body).toBe(201);
  const post = res.json<Post>();
  // Publishing is not an operation yet: the state is arranged in the database.
  if (options.published) {
    await t.db.sql(sql`update posts set published_at = now() where id = ${post.id}`);
  }
  return post;
}

async function signUpAdmin() {
  const admin = await signUpAndLogin(t);
  await t.db.sql(sql`update users set role = 'admin' where id = ${admin.user.id}`);
  return admin;
}

describe('createPost', () => {
  it('creates a draft with a slug made from a Portuguese title, and its Location', async () => {
    const author = await signUpAndLogin(t, { firstName: 'Ada', lastName: 'Lovelace' });
    const title = `Olá, Mundo! Ação ${unique()}`;
    const res = await createPost({ title, content: 'Primeiro post.' }, author.auth);
    expect(res.statusCode, res.body).toBe(201);
    const post = res.json<Post>();
    expect(Object.keys(post).sort()).toEqual(POST_KEYS);
    expect(res.headers.location).toBe(`/api/posts/${post.id}`);
    expect(post).toMatchObject({
      title,
      content: 'Primeiro post.',
      slug: expect.stringMatching(/^ola-mundo-acao-[a-z0-9]+$/),
      authorId: author.user.id,
      author: {
        id: author.user.id,
        username: author.user.username,
        firstName: 'Ada',
        lastName: 'Lovelace',
      },
      viewCount: 0,
      publishedAt: null,
    });
    expect(post.createdAt).toBe(post.updatedAt);

    const read = await getPost(post.id, author.auth);
    expect(read.statusCode, read.body).toBe(200);
    expect(read.json<Post>()).toEqual(post);
  });

  it('keeps an explicit slug', async () => {
    const author = await signUpAndLogin(t);
    const slug = `my-own-slug-${unique().toLowerCase()}`;
    const res = await createPost({ title: 'Anything', content: 'x', slug }, author.auth);
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json<Post>().slug).toBe(slug);
  });

  it('answers 409 naming the field when an explicit slug is taken, even by another author', async () => {
    const first = await signUpAndLogin(t);
    const second = await signUpAndLogin(t);
    const slug = `taken-${unique().toLowerCase()}`;
    expect((await createPost({ title: 'A', content: 'x', slug }, first.auth)).statusCode).toBe(201);
    for (const who of [first, second]) {
      const problem = expectProblem(
        await createPost({ title: 'B', content: 'y', slug }, who.auth),
        409,
        'CONFLICT',
        '/api/posts',
      );
      expect(problem.errors).toEqual([
        { location: 'body', pointer: '/slug', message: 'is already taken' },
      ]);
    }
  });

  it('gives the taken base slug a suffix when the title is the same', async () => {
    const author = await signUpAndLogin(t);
    const title = `Same title ${unique()}`;
    const first = await createPost({ title, content: 'x' }, author.auth);
    const second = await createPost({ title, content: 'x' }, author.auth);
    const base = first.json<Post>().slug;
    expect(base).toBe(title.toLowerCase().replace(/ /g, '-'));
    expect(second.json<Post>().slug).toMatch(new RegExp(`^${base}-[a-z0-9]{6}$`));
  });

  it('creates 20 posts with one title at the same moment, each with its own slug', async () => {
    const author = await signUpAndLogin(t);
    const title = `Race ${unique()}`;
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => createPost({ title, content: 'x' }, author.auth)),
    );
    expect(responses.map((res) => res.statusCode)).toEqual(Array(20).fill(201));
    const slugs = new Set(responses.map((res) => res.json<Post>().slug));
    expect(slugs.size).toBe(20);
  });

  it('gives a title with nothing in ASCII a valid slug', async () => {
    const author = await signUpAndLogin(t);
    const res = await createPost({ title: '日本語', content: 'x' }, author.auth);
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json<Post>().slug).toMatch(/^post(-[a-z0-9]{6})?$/);
  });

  it.each([
    ['an unknown field', { title: 'T', content: 'c', publishedAt: null }, '/publishedAt'],
    ['an empty title', { title: '', content: 'c' }, '/title'],
    ['a title of 201 characters', { title: 'x'.repeat(201), content: 'c' }, '/title'],
    ['no content', { title: 'T' }, '/content'],
    ['a slug with capitals', { title: 'T', content: 'c', slug: 'Hello' }, '/slug'],
    ['a slug with a double hyphen', { title: 'T', content: 'c', slug: 'a--b' }, '/slug'],
    ['a slug ending with a hyphen', { title: 'T', content: 'c', slug: 'a-' }, '/slug'],
  ])('answers 400 to %s', async (_name, body, pointer) => {
    const author = await signUpAndLogin(t);
    expectValidationError(await createPost(body, author.auth), 'body', pointer);
  });

  it('answers 401 without a token, or with a bad one', async () => {
    expectProblem(await createPost({ title: 'T', content: 'c' }), 401, 'UNAUTHORIZED');
    expectProblem(
      await createPost({ title: 'T', content: 'c' }, { authorization: 'Bearer nope' }),
      401,
      'UNAUTHORIZED',
    );
  });
});

describe('reading a post', () => {
  const readers = [
    ['getPost', (post: Post, headers?: Headers) => getPost(post.id, headers)],
    ['getPostBySlug', (post: Post, headers?: Headers) => getPostBySlug(post.slug, headers)],
  ] as const;

  it.each(readers)('%s shows a draft to its author and admins only', async (_name, read) => {
    const author = await signUpAndLogin(t);
    const other = await signUpAndLogin(t);
    const admin = await signUpAdmin();
    const draft = await postOf(author.auth);

    expect((await read(draft, author.auth)).json<Post>().id).toBe(draft.id);
    expect((await read(draft, admin.auth)).json<Post>().id).toBe(draft.id);
    // To anybody else it does not exist: the same 404 as a post nobody has.
    expectProblem(await read(draft, other.auth), 404, 'NOT_FOUND');
    expectProblem(await read(draft), 404, 'NOT_FOUND');
  });

  it.each(readers)('%s shows a published post to anybody', async (_name, read) => {
    const author = await signUpAndLogin(t);
    const other = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    for (const headers of [undefined, other.auth, author.auth]) {
      const res = await read(post, headers);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json<Post>().publishedAt).toMatch(/^\d{4}-\d{2}-\d{2}T.*Z$/);
    }
  });

  it.each(readers)('%s refuses a bad token instead of reading anonymously', async (_name, read) => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    expectProblem(await read(post, { authorization: 'Bearer nope' }), 401, 'UNAUTHORIZED');
  });

  it('answers 404 to an id and a slug nobody has, 400 to malformed ones', async () => {
    expectProblem(await getPost(UNKNOWN_ID), 404, 'NOT_FOUND', `/api/posts/${UNKNOWN_ID}`);
    expectProblem(await getPostBySlug('no-such-post'), 404, 'NOT_FOUND');
    expectValidationError(await getPost('not-a-uuid'), 'path', '/id');
    expectValidationError(await getPostBySlug('Not_A_Slug'), 'path', '/slug');
  });

  it('reads a slug of 255 characters', async () => {
    const author = await signUpAndLogin(t);
    const slug = `${unique().toLowerCase()}-${'a'.repeat(255)}`.slice(0, 255);
    expect((await createPost({ title: 'Long', content: 'x', slug }, author.auth)).statusCode).toBe(
      201,
    );
    expect((await getPostBySlug(slug, author.auth)).statusCode).toBe(200);
  });
});

describe('deletePost', () => {
  it('lets the author delete their post: 204, then 404', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth);
    const res = await deletePost(post.id, author.auth);
    expect(res.statusCode, res.body).toBe(204);
    expect(res.body).toBe('');
    expectProblem(await getPost(post.id, author.auth), 404, 'NOT_FOUND');
    expectProblem(await deletePost(post.id, author.auth), 404, 'NOT_FOUND');
  });

  it('answers 403 to another user for a published post, 404 for a draft, and keeps it', async () => {
    const author = await signUpAndLogin(t);
    const other = await signUpAndLogin(t);
    const published = await postOf(author.auth, { published: true });
    const draft = await postOf(author.auth);
    expectProblem(await deletePost(published.id, other.auth), 403, 'FORBIDDEN');
    expectProblem(await deletePost(draft.id, other.auth), 404, 'NOT_FOUND');
    expect((await getPost(published.id)).statusCode).toBe(200);
    expect((await getPost(draft.id, author.auth)).statusCode).toBe(200);
  });

  it("lets an admin delete anybody's post, draft or published", async () => {
    const author = await signUpAndLogin(t);
    const admin = await signUpAdmin();
    for (const post of [
      await postOf(author.auth),
      await postOf(author.auth, { published: true }),
    ]) {
      expect((await deletePost(post.id, admin.auth)).statusCode).toBe(204);
      expectProblem(await getPost(post.id, author.auth), 404, 'NOT_FOUND');
    }
  });

  it('answers 401 without a token and 400 to a malformed id', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth);
    expectProblem(await deletePost(post.id), 401, 'UNAUTHORIZED');
    expectValidationError(await deletePost('nope', author.auth), 'path', '/id');
  });
});

describe('deleting a user', () => {
  it('deletes their posts with them', async () => {
    const author = await signUpAndLogin(t);
    const posts = [await postOf(author.auth), await postOf(author.auth, { published: true })];
    const deleted = await t.inject({
      method: 'DELETE',
      url: `/api/users/${author.user.id}`,
      headers: author.auth,
    });
    expect(deleted.statusCode, deleted.body).toBe(200);
    for (const post of posts) expectProblem(await getPost(post.id), 404, 'NOT_FOUND');
    const left = await t.db.sql(
      sql`select count(*)::int as n from posts where author_id = ${author.user.id}`,
    );
    expect(left).toEqual([{ n: 0 }]);
  });
});
