import { sql } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
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
const STRONG_ETAG = /^"\d+-[0-9a-f]{16}"$/;

const { createPost, getPost, getPostBySlug, deletePost } = postCalls(t);

/** PATCH /api/posts/{id}, as a merge patch unless another content type is given. */
function updatePost(
  id: string,
  body: unknown,
  headers: Headers = {},
  contentType = 'application/merge-patch+json',
) {
  return t.inject({
    method: 'PATCH',
    url: `/api/posts/${id}`,
    headers: { ...headers, 'content-type': contentType },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

function publishPost(id: string, headers: Headers = {}) {
  return t.inject({ method: 'POST', url: `/api/posts/${id}/publish`, headers });
}

function unpublishPost(id: string, headers: Headers = {}) {
  return t.inject({ method: 'POST', url: `/api/posts/${id}/unpublish`, headers });
}

function recordView(id: string, headers: Headers = {}) {
  return t.inject({ method: 'POST', url: `/api/posts/${id}/views`, headers });
}

/** A new post of this author, through the API; a draft unless `published`. */
async function postOf(auth: Headers, options: { published?: boolean } = {}): Promise<Post> {
  const res = await createPost({ title: `Post ${unique()}`, content: 'Some words.' }, auth);
  expect(res.statusCode, res.body).toBe(201);
  const post = res.json<Post>();
  if (!options.published) return post;
  const published = await publishPost(post.id, auth);
  expect(published.statusCode, published.body).toBe(200);
  return published.json<Post>();
}

async function signUpAdmin() {
  const admin = await signUpAndLogin(t);
  await t.db.sql(sql`update users set role = 'admin' where id = ${admin.user.id}`);
  return admin;
}

/** The post as its author (or an admin) reads it now, with its ETag. */
async function readBack(id: string, auth: Headers): Promise<{ post: Post; etag: string }> {
  const res = await getPost(id, auth);
  expect(res.statusCode, res.body).toBe(200);
  return { post: res.json<Post>(), etag: etagOf(res) };
}

function etagOf(res: LightMyRequestResponse): string {
  const etag = res.headers.etag;
  expect(etag, 'an ETag header').toEqual(expect.stringMatching(STRONG_ETAG));
  return etag as string;
}

/** Moves the post's timestamps an hour back, so that "now" is later whatever the clock. */
async function ageing(id: string) {
  await t.db.sql(
    sql`update posts set created_at = created_at - interval '1 hour',
          updated_at = updated_at - interval '1 hour',
          published_at = published_at - interval '1 hour'
        where id = ${id}`,
  );
}

describe('updatePost', () => {
  it('changes the title only: content and slug stay, updatedAt grows, with an ETag', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth);
    await ageing(post.id);
    const before = (await readBack(post.id, author.auth)).post;

    const title = `A new title ${unique()}`;
    const res = await updatePost(post.id, { title }, author.auth);
    expect(res.statusCode, res.body).toBe(200);
    etagOf(res);
    const updated = res.json<Post>();
    expect(updated).toEqual({ ...before, title, updatedAt: updated.updatedAt });
    // The slug does not follow the title: links to the post stay valid.
    expect(updated.slug).toBe(post.slug);
    expect(Date.parse(updated.updatedAt)).toBeGreaterThan(Date.parse(before.updatedAt));
    expect((await readBack(post.id, author.auth)).post).toEqual(updated);
  });

  it.each(['application/merge-patch+json', 'application/json'])(
    'takes the body as %s',
    async (contentType) => {
      const author = await signUpAndLogin(t);
      const post = await postOf(author.auth);
      const content = `New content ${unique()}`;
      const res = await updatePost(post.id, { content }, author.auth, contentType);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json<Post>()).toMatchObject({ title: post.title, content, slug: post.slug });
    },
  );

  it('moves the post to a new explicit slug: found by it, no longer by the old one', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    const slug = `moved-${unique().toLowerCase()}`;
    const res = await updatePost(post.id, { slug }, author.auth);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<Post>()).toMatchObject({ slug, title: post.title });

    const bySlug = await getPostBySlug(slug);
    expect(bySlug.statusCode, bySlug.body).toBe(200);
    expect(bySlug.json<Post>().id).toBe(post.id);
    expectProblem(await getPostBySlug(post.slug), 404, 'NOT_FOUND');
  });

  it('keeps the slug when the post is sent its own slug', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth);
    const res = await updatePost(post.id, { slug: post.slug, title: 'Same slug' }, author.auth);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<Post>()).toMatchObject({ slug: post.slug, title: 'Same slug' });
  });

  it("answers 409 naming /slug when the slug is another post's, and changes nothing", async () => {
    const author = await signUpAndLogin(t);
    const other = await signUpAndLogin(t);
    const theirs = await postOf(other.auth);
    const post = await postOf(author.auth);
    const problem = expectProblem(
      await updatePost(post.id, { slug: theirs.slug, title: 'Not applied' }, author.auth),
      409,
      'CONFLICT',
      `/api/posts/${post.id}`,
    );
    expect(problem.errors).toEqual([
      { location: 'body', pointer: '/slug', message: 'is already taken' },
    ]);
    expect((await readBack(post.id, author.auth)).post).toEqual(post);
  });

  it('answers 400 to an empty patch', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth);
    expectProblem(await updatePost(post.id, {}, author.auth), 400, 'VALIDATION_ERROR');
    expect((await readBack(post.id, author.auth)).post).toEqual(post);
  });

  it.each([
    ['an unknown field', { title: 'T', publishedAt: null }, '/publishedAt'],
    ['a null title (a merge patch cannot remove it)', { title: null }, '/title'],
    ['a null content', { content: null }, '/content'],
    ['a null slug', { slug: null }, '/slug'],
    ['an empty title', { title: '' }, '/title'],
    ['a slug with capitals', { slug: 'Hello' }, '/slug'],
  ])('answers 400 to %s and changes nothing', async (_name, body, pointer) => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth);
    expectValidationError(await updatePost(post.id, body, author.auth), 'body', pointer);
    expect((await readBack(post.id, author.auth)).post).toEqual(post);
  });

  it('answers 400 to a body that is not an object', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth);
    expectProblem(await updatePost(post.id, '["title"]', author.auth), 400, 'VALIDATION_ERROR');
  });

  it('answers 415 to a text/plain body', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth);
    expectProblem(
      await updatePost(post.id, '{"title":"T"}', author.auth, 'text/plain'),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    expect((await readBack(post.id, author.auth)).post).toEqual(post);
  });

  it('answers 401 without a token or with a bad one', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    expectProblem(await updatePost(post.id, { title: 'T' }), 401, 'UNAUTHORIZED');
    expectProblem(
      await updatePost(post.id, { title: 'T' }, { authorization: 'Bearer nope' }),
      401,
      'UNAUTHORIZED',
    );
    expect((await readBack(post.id, author.auth)).post).toEqual(post);
  });

  it('answers 400 to a malformed id and 404 to an id nobody has', async () => {
    const author = await signUpAndLogin(t);
    expectValidationError(
      await updatePost('not-a-uuid', { title: 'T' }, author.auth),
      'path',
      '/id',
    );
    expectProblem(
      await updatePost(UNKNOWN_ID, { title: 'T' }, author.auth),
      404,
      'NOT_FOUND',
      `/api/posts/${UNKNOWN_ID}`,
    );
  });
});

const changes = [
  ['updatePost', (id: string, auth: Headers) => updatePost(id, { title: 'Taken over' }, auth)],
  ['publishPost', (id: string, auth: Headers) => publishPost(id, auth)],
  ['unpublishPost', (id: string, auth: Headers) => unpublishPost(id, auth)],
  ['deletePost', (id: string, auth: Headers) => deletePost(id, auth)],
] as const;

describe("changing another user's post", () => {
  it.each(changes)(
    '%s: another user gets 403 for a published post, 404 for a draft; both unchanged',
    async (_name, change) => {
      const author = await signUpAndLogin(t);
      const other = await signUpAndLogin(t);
      const published = await postOf(author.auth, { published: true });
      const draft = await postOf(author.auth);

      expectProblem(await change(published.id, other.auth), 403, 'FORBIDDEN');
      expectProblem(await change(draft.id, other.auth), 404, 'NOT_FOUND');

      expect((await readBack(published.id, author.auth)).post).toEqual(published);
      expect((await readBack(draft.id, author.auth)).post).toEqual(draft);
    },
  );

  it.each(changes)(
    '%s: answers 401 without a token and 400 to a malformed id',
    async (_name, change) => {
      const author = await signUpAndLogin(t);
      const post = await postOf(author.auth, { published: true });
      expectProblem(await change(post.id, {}), 401, 'UNAUTHORIZED');
      expectProblem(await change(post.id, { authorization: 'Bearer nope' }), 401, 'UNAUTHORIZED');
      expectValidationError(await change('nope', author.auth), 'path', '/id');
      expectProblem(await change(UNKNOWN_ID, author.auth), 404, 'NOT_FOUND');
      expect((await readBack(post.id, author.auth)).post).toEqual(post);
    },
  );

  it("lets an admin update, unpublish, publish and delete anybody's post", async () => {
    const author = await signUpAndLogin(t);
    const admin = await signUpAdmin();
    const post = await postOf(author.auth, { published: true });

    const updated = await updatePost(post.id, { title: 'Moderated' }, admin.auth);
    expect(updated.statusCode, updated.body).toBe(200);
    expect(updated.json<Post>()).toMatchObject({ title: 'Moderated', authorId: author.user.id });

    const unpublished = await unpublishPost(post.id, admin.auth);
    expect(unpublished.statusCode, unpublished.body).toBe(200);
    expect(unpublished.json<Post>().publishedAt).toBeNull();
    expectProblem(await getPost(post.id), 404, 'NOT_FOUND');

    // A draft of somebody else's is still there for an admin.
    const republished = await publishPost(post.id, admin.auth);
    expect(republished.statusCode, republished.body).toBe(200);
    expect(republished.json<Post>().publishedAt).not.toBeNull();
    expect((await getPost(post.id)).statusCode).toBe(200);

    expect((await deletePost(post.id, admin.auth)).statusCode).toBe(204);
    expectProblem(await getPost(post.id, author.auth), 404, 'NOT_FOUND');
  });

  it("lets an admin change another user's draft", async () => {
    const author = await signUpAndLogin(t);
    const admin = await signUpAdmin();
    const draft = await postOf(author.auth);
    const res = await updatePost(draft.id, { content: 'Edited by an admin.' }, admin.auth);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<Post>()).toMatchObject({ content: 'Edited by an admin.', publishedAt: null });
  });
});

describe('publishPost and unpublishPost', () => {
  it('publishes a draft: publishedAt set, visible to anybody, cacheable publicly', async () => {
    const author = await signUpAndLogin(t);
    const draft = await postOf(author.auth);
    const asDraft = await getPost(draft.id, author.auth);
    expect(asDraft.headers['cache-control']).toBe('private, no-cache');
    expectProblem(await getPost(draft.id), 404, 'NOT_FOUND');

    const res = await publishPost(draft.id, author.auth);
    expect(res.statusCode, res.body).toBe(200);
    etagOf(res);
    const published = res.json<Post>();
    expect(published.publishedAt).toMatch(/^\d{4}-\d{2}-\d{2}T.*Z$/);
    expect(published).toMatchObject({ id: draft.id, title: draft.title, slug: draft.slug });

    const anonymous = await getPost(draft.id);
    expect(anonymous.statusCode, anonymous.body).toBe(200);
    expect(anonymous.json<Post>()).toEqual(published);
    expect(anonymous.headers['cache-control']).toBe('public, no-cache');
    expect((await getPost(draft.id, author.auth)).headers['cache-control']).toBe(
      'public, no-cache',
    );
  });

  it('leaves a published post as it is when published again (200, publishedAt kept)', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    await ageing(post.id);
    const before = await readBack(post.id, author.auth);

    const again = await publishPost(post.id, author.auth);
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json<Post>()).toEqual(before.post);
    expect(again.headers.etag).toBe(before.etag);
  });

  it('makes a published post a draft again, keeping its slug and views', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    for (let i = 0; i < 3; i += 1) expect((await recordView(post.id)).statusCode).toBe(200);

    const res = await unpublishPost(post.id, author.auth);
    expect(res.statusCode, res.body).toBe(200);
    etagOf(res);
    expect(res.json<Post>()).toMatchObject({
      id: post.id,
      slug: post.slug,
      viewCount: 3,
      publishedAt: null,
    });
    expectProblem(await getPost(post.id), 404, 'NOT_FOUND');
    expectProblem(await getPostBySlug(post.slug), 404, 'NOT_FOUND');
    const own = await getPost(post.id, author.auth);
    expect(own.json<Post>()).toMatchObject({ slug: post.slug, viewCount: 3, publishedAt: null });
    expect(own.headers['cache-control']).toBe('private, no-cache');
  });

  it('leaves a draft as it is when unpublished (200)', async () => {
    const author = await signUpAndLogin(t);
    const draft = await postOf(author.auth);
    await ageing(draft.id);
    const before = await readBack(draft.id, author.auth);
    const res = await unpublishPost(draft.id, author.auth);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<Post>()).toEqual(before.post);
    expect(res.headers.etag).toBe(before.etag);
  });
});

describe('ETag and If-None-Match', () => {
  const readers = [
    ['getPost', (post: Post, headers?: Headers) => getPost(post.id, headers)],
    ['getPostBySlug', (post: Post, headers?: Headers) => getPostBySlug(post.slug, headers)],
  ] as const;

  it.each(readers)(
    '%s: 304 with no body, the same ETag and Cache-Control, for the current ETag',
    async (_name, read) => {
      const author = await signUpAndLogin(t);
      const post = await postOf(author.auth, { published: true });
      const first = await read(post);
      expect(first.statusCode, first.body).toBe(200);
      const etag = etagOf(first);
      expect(first.headers['cache-control']).toBe('public, no-cache');

      const again = await read(post, { 'if-none-match': etag });
      expect(again.statusCode).toBe(304);
      expect(again.body).toBe('');
      expect(again.headers.etag).toBe(etag);
      expect(again.headers['cache-control']).toBe('public, no-cache');
    },
  );

  it.each(readers)('%s: 304 for a draft to its author, privately', async (_name, read) => {
    const author = await signUpAndLogin(t);
    const draft = await postOf(author.auth);
    const etag = etagOf(await read(draft, author.auth));
    const again = await read(draft, { ...author.auth, 'if-none-match': etag });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    expect(again.headers['cache-control']).toBe('private, no-cache');
  });

  it.each(readers)(
    '%s: a draft stays 404 to others whatever If-None-Match says',
    async (_name, read) => {
      const author = await signUpAndLogin(t);
      const other = await signUpAndLogin(t);
      const draft = await postOf(author.auth);
      const etag = etagOf(await read(draft, author.auth));
      for (const tag of [etag, '*']) {
        expectProblem(await read(draft, { 'if-none-match': tag }), 404, 'NOT_FOUND');
        expectProblem(await read(draft, { ...other.auth, 'if-none-match': tag }), 404, 'NOT_FOUND');
      }
    },
  );

  it.each(readers)('%s: 200 with a new ETag once the post changed', async (_name, read) => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    const etag = etagOf(await read(post));
    expect((await updatePost(post.id, { content: 'Changed.' }, author.auth)).statusCode).toBe(200);

    const res = await read(post, { 'if-none-match': etag });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<Post>().content).toBe('Changed.');
    expect(etagOf(res)).not.toBe(etag);
  });

  it('matches *, a list holding the ETag and its weak form (weak comparison)', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    const etag = etagOf(await getPost(post.id));
    for (const header of [
      '*',
      `"1-0000000000000000", ${etag}, "other"`,
      `${etag},"1-0000000000000000"`,
      `W/${etag}`,
      `"1-0000000000000000", W/${etag}`,
    ]) {
      const res = await getPost(post.id, { 'if-none-match': header });
      expect(res.statusCode, `If-None-Match: ${header}`).toBe(304);
      expect(res.body).toBe('');
      expect(res.headers.etag).toBe(etag);
    }
  });

  it('answers 200 to tags that are not the current one', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    const etag = etagOf(await getPost(post.id));
    for (const header of ['"1-0000000000000000"', '"nonsense"', 'nonsense', etag.slice(1, -1)]) {
      const res = await getPost(post.id, { 'if-none-match': header });
      expect(res.statusCode, `If-None-Match: ${header}`).toBe(200);
      expect(res.headers.etag).toBe(etag);
    }
  });

  it('gives a new ETag after a view, as the viewCount in the body changed', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    const etag = etagOf(await getPost(post.id));
    expect((await recordView(post.id)).statusCode).toBe(200);

    const res = await getPost(post.id, { 'if-none-match': etag });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<Post>().viewCount).toBe(1);
    const viewed = etagOf(res);
    expect(viewed).not.toBe(etag);
    expect((await getPostBySlug(post.slug, { 'if-none-match': viewed })).statusCode).toBe(304);
  });
});

describe('If-Match', () => {
  it('refuses the second of two editors who read the same ETag (412), keeping the first edit', async () => {
    const author = await signUpAndLogin(t);
    const admin = await signUpAdmin();
    const post = await postOf(author.auth, { published: true });
    const etag = (await readBack(post.id, author.auth)).etag;

    const first = await updatePost(
      post.id,
      { title: 'First' },
      { ...author.auth, 'if-match': etag },
    );
    expect(first.statusCode, first.body).toBe(200);
    expect(etagOf(first)).not.toBe(etag);

    expectProblem(
      await updatePost(post.id, { title: 'Second' }, { ...admin.auth, 'if-match': etag }),
      412,
      'PRECONDITION_FAILED',
      `/api/posts/${post.id}`,
    );
    expect((await readBack(post.id, author.auth)).post).toEqual(first.json<Post>());

    // Read again, retry: now it goes through.
    const fresh = (await readBack(post.id, admin.auth)).etag;
    const retried = await updatePost(
      post.id,
      { title: 'Second' },
      { ...admin.auth, 'if-match': fresh },
    );
    expect(retried.statusCode, retried.body).toBe(200);
    expect(retried.json<Post>().title).toBe('Second');
  });

  /** Arranges a post whose ETag `stale` was read before another change was made. */
  async function staleTag(published: boolean) {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published });
    const stale = (await readBack(post.id, author.auth)).etag;
    const edited = await updatePost(post.id, { content: 'Meanwhile.' }, author.auth);
    expect(edited.statusCode, edited.body).toBe(200);
    return { author, post: edited.json<Post>(), stale };
  }

  it('refuses publishing with a stale ETag: still a draft', async () => {
    const { author, post, stale } = await staleTag(false);
    expectProblem(
      await publishPost(post.id, { ...author.auth, 'if-match': stale }),
      412,
      'PRECONDITION_FAILED',
    );
    expect((await readBack(post.id, author.auth)).post).toEqual(post);
    expectProblem(await getPost(post.id), 404, 'NOT_FOUND');
  });

  it('refuses unpublishing with a stale ETag: still published', async () => {
    const { author, post, stale } = await staleTag(true);
    expectProblem(
      await unpublishPost(post.id, { ...author.auth, 'if-match': stale }),
      412,
      'PRECONDITION_FAILED',
    );
    expect((await readBack(post.id, author.auth)).post).toEqual(post);
    expect((await getPost(post.id)).statusCode).toBe(200);
  });

  it('refuses deleting with a stale ETag: the post is still there', async () => {
    const { author, post, stale } = await staleTag(true);
    expectProblem(
      await deletePost(post.id, { ...author.auth, 'if-match': stale }),
      412,
      'PRECONDITION_FAILED',
    );
    expect((await readBack(post.id, author.auth)).post).toEqual(post);
  });

  it('does not count views as changes: the ETag read before them still matches', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    const etag = (await readBack(post.id, author.auth)).etag;
    for (let i = 0; i < 3; i += 1) expect((await recordView(post.id)).statusCode).toBe(200);
    // The representation changed (its ETag too), the post did not.
    expect((await readBack(post.id, author.auth)).etag).not.toBe(etag);

    const updated = await updatePost(
      post.id,
      { title: 'After views' },
      {
        ...author.auth,
        'if-match': etag,
      },
    );
    expect(updated.statusCode, updated.body).toBe(200);
    expect(updated.json<Post>()).toMatchObject({ title: 'After views', viewCount: 3 });
  });

  it.each(changes)(
    '%s: honours an ETag read before views, and refuses it after a change',
    async (name, change) => {
      const author = await signUpAndLogin(t);
      const post = await postOf(author.auth, { published: true });
      const etag = (await readBack(post.id, author.auth)).etag;
      expect((await recordView(post.id)).statusCode).toBe(200);
      const res = await change(post.id, { ...author.auth, 'if-match': etag });
      expect(res.statusCode, res.body).toBe(name === 'deletePost' ? 204 : 200);
    },
  );

  it.each(changes)('%s: If-Match * holds for any version', async (name, change) => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    expect((await updatePost(post.id, { content: 'A change.' }, author.auth)).statusCode).toBe(200);
    const res = await change(post.id, { ...author.auth, 'if-match': '*' });
    expect(res.statusCode, res.body).toBe(name === 'deletePost' ? 204 : 200);
  });

  it.each(changes)(
    '%s: a weak tag of the current ETag, garbage, or an unquoted tag never match (412)',
    async (_name, change) => {
      const author = await signUpAndLogin(t);
      const post = await postOf(author.auth, { published: true });
      const etag = (await readBack(post.id, author.auth)).etag;
      for (const header of [`W/${etag}`, '"nonsense"', 'nonsense', etag.slice(1, -1)]) {
        expectProblem(
          await change(post.id, { ...author.auth, 'if-match': header }),
          412,
          'PRECONDITION_FAILED',
        );
      }
      expect((await readBack(post.id, author.auth)).post).toEqual(post);
    },
  );

  it('matches when the current ETag is one of a list', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    const etag = (await readBack(post.id, author.auth)).etag;
    const res = await updatePost(
      post.id,
      { title: 'Listed' },
      {
        ...author.auth,
        'if-match': `"0-0000000000000000", ${etag}`,
      },
    );
    expect(res.statusCode, res.body).toBe(200);
  });

  it('checks visibility and ownership before the condition: 404 and 403, not 412', async () => {
    const author = await signUpAndLogin(t);
    const other = await signUpAndLogin(t);
    const published = await postOf(author.auth, { published: true });
    const draft = await postOf(author.auth);
    const stale = '"0-0000000000000000"';
    expectProblem(
      await updatePost(published.id, { title: 'x' }, { ...other.auth, 'if-match': stale }),
      403,
      'FORBIDDEN',
    );
    expectProblem(
      await updatePost(draft.id, { title: 'x' }, { ...other.auth, 'if-match': stale }),
      404,
      'NOT_FOUND',
    );
  });

  it('lets the last write win without If-Match', async () => {
    const author = await signUpAndLogin(t);
    const admin = await signUpAdmin();
    const post = await postOf(author.auth);
    const first = await updatePost(post.id, { title: 'One' }, author.auth);
    const second = await updatePost(post.id, { title: 'Two' }, admin.auth);
    expect([first.statusCode, second.statusCode]).toEqual([200, 200]);
    expect((await readBack(post.id, author.auth)).post.title).toBe('Two');
  });

  it('lets exactly one of 10 concurrent PATCHes with the same If-Match through', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    const etag = (await readBack(post.id, author.auth)).etag;
    const titles = Array.from({ length: 10 }, (_, i) => `Concurrent ${i}`);
    const responses = await Promise.all(
      titles.map((title) => updatePost(post.id, { title }, { ...author.auth, 'if-match': etag })),
    );
    const statuses = responses.map((res) => res.statusCode).sort();
    expect(statuses).toEqual([200, ...Array(9).fill(412)]);
    for (const res of responses) {
      if (res.statusCode === 412) expectProblem(res, 412, 'PRECONDITION_FAILED');
    }
    const winner = responses.find((res) => res.statusCode === 200)!.json<Post>();
    expect((await readBack(post.id, author.auth)).post).toEqual(winner);
  });

  it('applies every one of 30 concurrent PATCHes without If-Match: none gets 412', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    const titles = Array.from({ length: 30 }, (_, i) => `Unconditional ${i}`);
    const responses = await Promise.all(
      titles.map((title) => updatePost(post.id, { title }, author.auth)),
    );
    expect(responses.map((res) => res.statusCode)).toEqual(Array(30).fill(200));
    expect(titles).toContain((await readBack(post.id, author.auth)).post.title);
  });

  it('answers 200 to every one of 30 concurrent publications, unpublications and edits', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth);
    const responses = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        i % 3 === 0
          ? publishPost(post.id, author.auth)
          : i % 3 === 1
            ? unpublishPost(post.id, author.auth)
            : updatePost(post.id, { content: `Edit ${i}` }, author.auth),
      ),
    );
    expect(responses.map((res) => res.statusCode)).toEqual(Array(30).fill(200));
  });

  it('deletes without If-Match while the post is being edited', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    const edits = Array.from({ length: 20 }, (_, i) =>
      updatePost(post.id, { content: `Edit ${i}` }, author.auth),
    );
    const deleted = deletePost(post.id, author.auth);
    const [deletion, ...rest] = await Promise.all([deleted, ...edits]);
    expect(deletion.statusCode, deletion.body).toBe(204);
    // An edit that came after the deletion finds no post.
    for (const res of rest) {
      if (res.statusCode !== 200) expectProblem(res, 404, 'NOT_FOUND');
    }
    expectProblem(await getPost(post.id, author.auth), 404, 'NOT_FOUND');
  });
});

describe('recordPostView', () => {
  it('counts 500 concurrent views of one post, each answered with its own count', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    const responses = await Promise.all(Array.from({ length: 500 }, () => recordView(post.id)));
    expect(responses.filter((res) => res.statusCode !== 200).map((res) => res.body)).toEqual([]);
    const counts = responses
      .map((res) => res.json<{ viewCount: number }>().viewCount)
      .sort((a, b) => a - b);
    expect(counts).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    expect((await readBack(post.id, author.auth)).post.viewCount).toBe(500);
  });

  it('answers with the new count, needs no token and leaves updatedAt alone', async () => {
    const author = await signUpAndLogin(t);
    const post = await postOf(author.auth, { published: true });
    const first = await recordView(post.id);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toEqual({ viewCount: 1 });
    expect((await recordView(post.id, author.auth)).json()).toEqual({ viewCount: 2 });
    const after = (await readBack(post.id, author.auth)).post;
    expect(after).toEqual({ ...post, viewCount: 2 });
  });

  it('answers 404 for a draft, even to its author, and counts nothing', async () => {
    const author = await signUpAndLogin(t);
    const draft = await postOf(author.auth);
    expectProblem(await recordView(draft.id), 404, 'NOT_FOUND', `/api/posts/${draft.id}/views`);
    expectProblem(await recordView(draft.id, author.auth), 404, 'NOT_FOUND');
    expect((await readBack(draft.id, author.auth)).post.viewCount).toBe(0);
  });

  it('answers 404 to an id nobody has and 400 to a malformed one', async () => {
    expectProblem(await recordView(UNKNOWN_ID), 404, 'NOT_FOUND');
    expectValidationError(await recordView('not-a-uuid'), 'path', '/id');
  });
});
