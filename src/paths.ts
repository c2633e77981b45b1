import { fileURLToPath } from 'node:url';

// This module sits one folder below the project root both as source (src/) and when
// built (dist/), so the committed files it points at resolve the same way in both.
const root = new URL('../', import.meta.url);

export const projectRoot = fileURLToPath(root);
export const specSourcePath = fileURLToPath(new URL('openapi/openapi.yaml', root));
export const bundledSpecPath = fileURLToPath(new URL('generated/openapi.json', root));
export const generatedTypesPath = fileURLToPath(new URL('generated/api.d.ts', root));
export const migrationsFolder = fileURLToPath(new URL('drizzle', root));
export const asyncApiSourcePath = fileURLToPath(new URL('openapi/asyncapi.yaml', root));
export const bundledAsyncApiPath = fileURLToPath(new URL('generated/asyncapi.json', root));
export const generatedAsyncApiTypesPath = fileURLToPath(new URL('generated/asyncapi.d.ts', root));
/** The GraphQL schema derived from the bundled spec (scripts/graphql-artifacts.ts). */
export const generatedGraphqlSchemaPath = fileURLToPath(new URL('generated/schema.graphql', root));
