import type { InjectOptions } from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import { signUpAndLogin, useTestApp } from '../helpers/app.js';
import { expectProblem } from '../helpers/problems.js';
import { unique } from '../helpers/values.js';

/**
 * The statuses every post operation declares for what a client sends wrong with the
 * request itself, before any rule of posts: a path parameter too long (414), a body too
 * large (413) or of a media type the operation does not take (415). Each case also checks
 * that nothing changed: the post is still there, as it was.
 */

const t = useTestApp();
let auth: Record<string, string> = {};
let postId = '';
let before = '';

beforeAll(async () => {
  ({ auth } = await signUpAndLogin(t));
  const created = await t.inject({
    method: 'POST',
    url: '/api/posts',
    headers: auth,
    payload: { title: `Statuses ${unique()}`, content: 'Unchanged, whatever is sent.' },
  });
  expect(created.statusCode, created.body).toBe(201);
  postId = created.json<{ id: string }>().id;
  before = (await t.inject({ method: 'GET', url: `/api/posts/${postId}`, headers: auth })).body;
});

async function expectUnchanged() {
  const after = await t.inject({ method: 'GET', url: `/api/posts/${postId}`, headers: auth });
  expect(after.statusCode).toBe(200);
  expect(after.body).toBe(before);
}

type Method = NonNullable<InjectOptions['method']>;

/** The operations that take a post's id (or slug, or a user's id) in their path. */
const withPathParameter: [string, Method, (id: string) => string][] = [
  ['getPost', 'GET', (id) => `/api/posts/${id}`],
  ['updatePost', 'PATCH', (id) => `/api/posts/${id}`],
  ['deletePost', 'DELETE', (id) => `/api/posts/${id}`],
  ['publishPost', 'POST', (id) => `/api/posts/${id}/publish`],
  ['unpublishPost', 'POST', (id) => `/api/posts/${id}/unpublish`],
  ['recordPostView', 'POST', (id) => `/api/posts/${id}/views`],
  ['getPostBySlug', 'GET', (slug) => `/api/posts/by-slug/${slug}`],
  ['listUserPosts', 'GET', (id) => `/api/users/${id}/posts`],
];

/** The operations that read a body (a required one, or one that may be sent). */
const withBody: [string, Method, () => string, Record<string, unknown>][] = [
  ['createPost', 'POST', () => '/api/posts', { title: 'T', content: 'C' }],
  ['updatePost', 'PATCH', () => `/api/posts/${postId}`, { title: 'T' }],
  ['deletePost', 'DELETE', () => `/api/posts/${postId}`, {}],
  ['publishPost', 'POST', () => `/api/posts/${postId}/publish`, {}],
  ['unpublishPost', 'POST', () => `/api/posts/${postId}/unpublish`, {}],
  ['recordPostView', 'POST', () => `/api/posts/${postId}/views`, {}],
];

describe('post operations refuse malformed requests and change nothing', () => {
  it.each(withPathParameter)(
    '%s answers 414 URI_TOO_LONG to a path parameter over 255 characters',
    async (_operation, method, url) => {
      const res = await t.inject({ method, url: url('a'.repeat(256)), headers: auth });
      expectProblem(res, 414, 'URI_TOO_LONG');
      await expectUnchanged();
    },
  );

  it.each(withBody)(
    '%s answers 413 PAYLOAD_TOO_LARGE to a body over 1 MiB',
    async (_operation, method, url, valid) => {
      const payload = JSON.stringify({ ...valid, content: 'x'.repeat(2 * 1024 * 1024) });
      const res = await t.inject({
        method,
        url: url(),
        headers: { ...auth, 'content-type': 'application/json' },
        payload,
      });
      expectProblem(res, 413, 'PAYLOAD_TOO_LARGE', url());
      await expectUnchanged();
    },
  );

  it.each(withBody)(
    '%s answers 415 UNSUPPORTED_MEDIA_TYPE to a text/plain body',
    async (_operation, method, url, valid) => {
      const res = await t.inject({
        method,
        url: url(),
        headers: { ...auth, 'content-type': 'text/plain' },
        payload: JSON.stringify(valid),
      });
      expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE', url());
      await expectUnchanged();
    },
  );

  it.each(
    withBody.filter(([operation]) => operation !== 'createPost' && operation !== 'updatePost'),
  )(
    '%s answers 400 MALFORMED_REQUEST to a body that is not JSON',
    async (_operation, method, url) => {
      const bad = await t.inject({
        method,
        url: url(),
        headers: { ...auth, 'content-type': 'application/json' },
        payload: '{"unclosed": ',
      });
      expectProblem(bad, 400, 'MALFORMED_REQUEST', url());
      await expectUnchanged();
    },
  );
});
