/**
 * npm run generate: writes generated/openapi.json and generated/api.d.ts from
 * openapi/openapi.yaml, and generated/asyncapi.json and generated/asyncapi.d.ts from
 * openapi/asyncapi.yaml (which $refs the former's schemas), and generated/schema.graphql,
 * the GraphQL schema derived from the bundled spec.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  bundledAsyncApiPath,
  bundledSpecPath,
  generatedAsyncApiTypesPath,
  generatedGraphqlSchemaPath,
  generatedTypesPath,
} from '../src/paths.js';
import { buildAsyncApiArtifacts } from './asyncapi-artifacts.js';
import { buildGraphqlSchema } from './graphql-artifacts.js';
import { buildSpecArtifacts } from './spec-artifacts.js';

const { bundledJson, typesDts, document } = await buildSpecArtifacts();
const live = await buildAsyncApiArtifacts(document);
await mkdir(dirname(bundledSpecPath), { recursive: true });
await writeFile(bundledSpecPath, bundledJson);
await writeFile(generatedTypesPath, typesDts);
await writeFile(bundledAsyncApiPath, live.bundledJson);
await writeFile(generatedAsyncApiTypesPath, live.typesDts);
await writeFile(generatedGraphqlSchemaPath, buildGraphqlSchema(document));
console.log(
  [
    bundledSpecPath,
    generatedTypesPath,
    bundledAsyncApiPath,
    generatedAsyncApiTypesPath,
    generatedGraphqlSchemaPath,
  ]
    .map((path) => `wrote ${path}`)
    .join('\n'),
);
