import SwaggerParser from '@apidevtools/swagger-parser';
import type { OpenAPIV3_1 } from 'openapi-types';
import { specSourcePath } from '../src/paths.js';

export interface BundledSpec {
  document: OpenAPIV3_1.Document;
  /** Every file the document was read from: the root and each file a $ref reached. */
  files: string[];
}

/**
 * Validates the spec whose root is `path` and bundles it: external $refs (the files under
 * openapi/paths and openapi/components) inlined, internal ones kept. Each component is
 * inlined at its entry in the root's `components`, and every other $ref to its file becomes
 * `#/components/…`: the root lists every component for that reason.
 */
export async function bundleSpecFiles(path: string = specSourcePath): Promise<BundledSpec> {
  // validate() dereferences the object it is given, so bundle from a fresh parse.
  await SwaggerParser.validate(path);
  const parser = new SwaggerParser();
  const document = (await parser.bundle(path)) as OpenAPIV3_1.Document;
  return { document, files: parser.$refs.paths() };
}

/** The bundled spec: generated/openapi.json is this document for openapi/openapi.yaml. */
export async function bundleSpec(path: string = specSourcePath): Promise<OpenAPIV3_1.Document> {
  return (await bundleSpecFiles(path)).document;
}
