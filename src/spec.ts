import { readFileSync } from 'node:fs';
import type { OpenApiDocument } from './http/contract.js';
import { bundledSpecPath } from './paths.js';

/** The bundled spec the server runs on: generated/openapi.json, as `npm run generate` wrote it. */
export function loadSpec(path = bundledSpecPath): OpenApiDocument {
  return JSON.parse(readFileSync(path, 'utf8')) as OpenApiDocument;
}
