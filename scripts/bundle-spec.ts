import SwaggerParser from '@apidevtools/swagger-parser';
import type { OpenAPIV3_1 } from 'openapi-types';
import { specSourcePath } from '../src/paths.js';

/**
 * Validates the spec at `path` and bundles it: external $refs inlined, internal ones kept.
 * generated/openapi.json is this document for openapi/openapi.yaml.
 */
export async function bundleSpec(path: string = specSourcePath): Promise<OpenAPIV3_1.Document> {
  // validate() dereferences the object it is given, so bundle from a fresh parse.
  await SwaggerParser.validate(path);
  return (await SwaggerParser.bundle(path)) as OpenAPIV3_1.Document;
}
