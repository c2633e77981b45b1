/** Where a spec (OpenAPI or AsyncAPI) keeps its named schemas. */
export const componentSchemas = '#/components/schemas/';

/**
 * A spec's schemas with their `$ref`s pointed at `$defs`, where JSON Schema looks for them:
 * a bundled spec keeps internal `$ref`s (`#/components/schemas/Post`), which mean nothing
 * inside a schema of their own.
 */
export function componentRefsToDefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(componentRefsToDefs);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [
      key,
      key === '$ref' && typeof item === 'string' && item.startsWith(componentSchemas)
        ? `#/$defs/${item.slice(componentSchemas.length)}`
        : componentRefsToDefs(item),
    ]),
  );
}
