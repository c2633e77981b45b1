import type { TestApp } from './app.js';

type Headers = Record<string, string>;

/** The post requests the posts tests send again and again, on the test app `t`. */
export function postCalls(t: TestApp) {
  return {
    createPost: (payload: Record<string, unknown>, headers: Headers = {}) =>
      t.inject({ method: 'POST', url: '/api/posts', headers, payload }),
    getPost: (id: string, headers: Headers = {}) =>
      t.inject({ method: 'GET', url: `/api/posts/${id}`, headers }),
    getPostBySlug: (slug: string, headers: Headers = {}) =>
      t.inject({ method: 'GET', url: `/api/posts/by-slug/${slug}`, headers }),
    deletePost: (id: string, headers: Headers = {}) =>
      t.inject({ method: 'DELETE', url: `/api/posts/${id}`, headers }),
  };
}
