import type { HandlerGroup } from '../../http/handler-types.js';
import { requirePrincipal } from '../../http/security.js';
import type { PostsService } from './service.js';

export type PostsOperations = 'createPost' | 'getPost' | 'getPostBySlug' | 'deletePost';

export function createPostsHandlers(service: PostsService): HandlerGroup<PostsOperations> {
  return {
    async createPost({ body, principal, reply, refuse }) {
      const created = await service.create(requirePrincipal(principal), body);
      if (!created.ok) return refuse(created.error);
      return reply(201, created.value, { Location: `/api/posts/${created.value.id}` });
    },
    // The access token is optional here: principal is null for an anonymous caller.
    async getPost({ params, principal, respond }) {
      return respond(200, await service.get(principal, params.id));
    },
    async getPostBySlug({ params, principal, respond }) {
      return respond(200, await service.getBySlug(principal, params.slug));
    },
    async deletePost({ params, principal, respond }) {
      return respond(204, await service.remove(requirePrincipal(principal), params.id));
    },
  };
}
