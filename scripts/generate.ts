/**
 * npm run generate: writes generated/openapi.json and generated/api.d.ts from
 * openapi/openapi.yaml, and generated/asyncapi.json and generated/asyncapi.d.ts from
 * openapi/asyncapi.yaml (which $refs the former's schemas).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  bundledAsyncApiPath,
  bundledSpecPath,
  generatedAsyncApiTypesPath,
  generatedTypesPath,
} from '../src/paths.js';
import { buildAsyncApiArtifacts } from './asyncapi-artifacts.js';
import { buildSpecArtifacts } from './spec-artifacts.js';

const { bundledJson, typesDts, document } = await buildSpecArtifacts();
const live = await buildAsyncApiArtifacts(document);
await mkdir(dirname(bundledSpecPath), { recursive: true });
await writeFile(bundledSpecPath, bundledJson);
await writeFile(generatedTypesPath, typesDts);
await writeFile(bundledAsyncApiPath, live.bundledJson);
await writeFile(generatedAsyncApiTypesPath, live.typesDts);
console.log(
  [bundledSpecPath, generatedTypesPath, bundledAsyncApiPath, generatedAsyncApiTypesPath]
    .map((path) => `wrote ${path}`)
    .join('\n'),
);
