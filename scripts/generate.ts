/**
 * npm run generate: writes generated/openapi.json and generated/api.d.ts from openapi/openapi.yaml.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { bundledSpecPath, generatedTypesPath } from '../src/paths.js';
import { buildSpecArtifacts } from './spec-artifacts.js';

const { bundledJson, typesDts } = await buildSpecArtifacts();
await mkdir(dirname(bundledSpecPath), { recursive: true });
await writeFile(bundledSpecPath, bundledJson);
await writeFile(generatedTypesPath, typesDts);
console.log(`wrote ${bundledSpecPath}\nwrote ${generatedTypesPath}`);
