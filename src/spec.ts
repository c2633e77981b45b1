import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import type { OpenApiDocument } from './http/contract.js';
import type { LiveDocument } from './http/live-messages.js';
import { bundledAsyncApiPath, bundledSpecPath } from './paths.js';

/** The bundled spec the server runs on: generated/openapi.json, as `npm run generate` wrote it. */
export function loadSpec(path = bundledSpecPath): OpenApiDocument {
  return JSON.parse(readFileSync(path, 'utf8')) as OpenApiDocument;
}

/** The spec as the server publishes it, at /openapi.json, at /openapi.yaml and in /docs. */
export interface PublishedSpec {
  readonly document: OpenApiDocument;
  /** The document as YAML, made at the first call (it takes a few hundred milliseconds). */
  yaml(): string;
}

/**
 * The bundled spec with `servers` set to the API's public address (PUBLIC_API_URL) when
 * there is one; otherwise unchanged (`servers` is `/`, whichever address served it).
 */
export function publishedSpec(spec: OpenApiDocument, publicApiUrl?: string): PublishedSpec {
  const document: OpenApiDocument = publicApiUrl
    ? { ...spec, servers: [{ url: publicApiUrl, description: 'This API' }] }
    : spec;
  let yaml: string | undefined;
  return Object.freeze({
    document,
    yaml: () => (yaml ??= stringify(document, { lineWidth: 0, aliasDuplicateObjects: false })),
  });
}

/**
 * The WebSocket's contract the server runs on: generated/asyncapi.json (openapi/asyncapi.yaml
 * with the OpenAPI schemas it uses copied in), as `npm run generate` wrote it.
 */
export function loadAsyncApi(path = bundledAsyncApiPath): LiveDocument {
  return JSON.parse(readFileSync(path, 'utf8')) as LiveDocument;
}
