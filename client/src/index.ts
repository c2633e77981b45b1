import createClient, { type Client, type ClientOptions, type Middleware } from 'openapi-fetch';
import type { components, paths } from './api.js';

/**
 * The typed client of the Contract-first API: openapi-fetch over the types generated from
 * the API's OpenAPI document. Paths, methods, parameters, bodies and the `data` and `error`
 * of every status are checked by the compiler against that document.
 */

export type { components, operations, paths } from './api.js';

/** The schemas of the spec by name: `Schemas['User']`, `Schemas['Post']`, … */
export type Schemas = components['schemas'];

/** The body of every error the API answers (RFC 9457, `application/problem+json`). */
export type Problem = components['schemas']['Problem'];

/** The access token to send, or none (then the request goes without one). */
export type TokenSource = () => string | null | undefined | Promise<string | null | undefined>;

export interface ApiClientOptions extends Omit<ClientOptions, 'baseUrl'> {
  /**
   * Where the API is, without a trailing slash: `https://api.example.com`. In a browser
   * page served by the API's own origin, `''` makes every URL relative to the page.
   */
  baseUrl: string;
  /**
   * Asked before every request; the token it gives is sent as `Authorization: Bearer …`
   * unless the request sets its own `Authorization` header.
   */
  token?: TokenSource;
}

export type ApiClient = Client<paths>;

/**
 * A client of the API at `baseUrl`: `client.GET('/api/posts/{id}', { params: { path: { id } } })`
 * answers `{ data }` for a success status and `{ error }` (a `Problem`) for the others,
 * with the `response` in both.
 */
export function createApiClient(options: ApiClientOptions): ApiClient {
  const { token, ...rest } = options;
  const client = createClient<paths>(rest);
  if (token) client.use(bearerToken(token));
  return client;
}

/** Middleware that sends the token of `token` as `Authorization: Bearer …`. */
export function bearerToken(token: TokenSource): Middleware {
  return {
    async onRequest({ request }) {
      if (request.headers.has('authorization')) return undefined;
      const value = await token();
      if (value) request.headers.set('authorization', `Bearer ${value}`);
      return request;
    },
  };
}

export {
  createLiveClient,
  LiveError,
  reconnectHints,
  type LiveChannel,
  type LiveClient,
  type LiveClientOptions,
  type LiveEvent,
  type LiveHandler,
  type LiveProblem,
  type LiveSocket,
  type LiveSocketConstructor,
  type LiveStatus,
  type LiveStatusInfo,
  type LiveSubscription,
  type ReconnectHint,
} from './live.js';
export type {
  ClientMessage,
  CloseCode,
  CloseCodes,
  Limits,
  MeEventMessage,
  PostEventMessage,
  PostsEventMessage,
  ServerMessage,
} from './asyncapi.js';
