/**
 * The GraphQL schema derived from the bundled OpenAPI document (generated/schema.graphql,
 * written by `npm run generate`, checked for drift by `npm run check`). The contract stays
 * the one source: nothing here is written by hand but the rules below.
 *
 * - **Operations**: each operation under `/api/` is a field: a GET of `Query`, any other
 *   method of `Mutation`. A query is named by its operationId without a leading `get` or
 *   `list` (`getPost` → `post`, `listPosts` → `posts`, `getMe` → `me`); a mutation by its
 *   operationId. Its description is the operation's summary and description.
 * - **Arguments**: the path and query parameters, by name, with their types (header
 *   parameters are HTTP's: If-Match, If-None-Match); a request body is `input`.
 * - **Results**: the schema of the first 2xx response, nullable when the operation may answer
 *   404 (null where REST says 404); a response without a body (204) is `Boolean!`. A keyset page (an object of `items` and `nextCursor`) is a connection:
 *   `<Item>Connection { nodes, pageInfo { endCursor, hasNextPage } }`, its `limit` and
 *   `cursor` parameters the arguments `first` and `after`.
 * - **Types**: a component schema that is an object is a type (an input type, `<Name>Input`
 *   without a trailing `Request`, where a request body uses it); a string enum is an enum,
 *   its values in upper snake case (`post.published` → `POST_PUBLISHED`); other components
 *   are scalars: `ID` for a uuid, `DateTime` for a date-time, else String, Int, Float or
 *   Boolean. A property is non-null when it is required and its type does not allow null.
 *   Descriptions are carried over.
 *
 * What the generator cannot map (a oneOf, an object without properties) stops it with the
 * schema's place named: the contract would need a rule here first.
 */
import { buildSchema, printSchema } from 'graphql';

const METHODS = ['get', 'put', 'post', 'patch', 'delete'] as const;

type Schema = {
  $ref?: string;
  type?: string | string[];
  format?: string;
  enum?: unknown[];
  const?: unknown;
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  description?: string;
  [key: string]: unknown;
};

interface Parameter {
  $ref?: string;
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  description?: string;
  schema: Schema;
}

interface Operation {
  operationId?: string;
  summary?: string;
  description?: string;
  parameters?: Parameter[];
  requestBody?: { $ref?: string; required?: boolean; content?: Record<string, { schema: Schema }> };
  responses: Record<
    string,
    { $ref?: string; content?: Record<string, { schema: Schema }>; description?: string }
  >;
}

type PathItem = { parameters?: Parameter[] } & Partial<Record<(typeof METHODS)[number], Operation>>;

export interface OpenApiDocument {
  paths: Record<string, PathItem>;
  components: {
    schemas: Record<string, Schema>;
    parameters?: Record<string, Parameter>;
    responses?: Record<string, Operation['responses'][string]>;
    requestBodies?: Record<string, NonNullable<Operation['requestBody']>>;
  };
}

const refName = (ref: string) => ref.slice(ref.lastIndexOf('/') + 1);
const pascal = (name: string) => name.charAt(0).toUpperCase() + name.slice(1);
const enumValue = (value: string) =>
  value
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toUpperCase();

/** A GraphQL description block ("""…"""), indented, or nothing. */
function described(text: string | undefined, indent = ''): string {
  const trimmed = text?.trim();
  if (!trimmed) return '';
  const body = trimmed.replaceAll('"""', '\\"""');
  return `${indent}"""\n${body
    .split('\n')
    .map((line) => (line ? `${indent}${line}` : ''))
    .join('\n')}\n${indent}"""\n`;
}

const queryName = (operationId: string) => {
  const bare = operationId.replace(/^(get|list)(?=[A-Z])/, '');
  return bare.charAt(0).toLowerCase() + bare.slice(1);
};

class SdlBuilder {
  private readonly outputs = new Map<string, string>();
  private readonly inputs = new Map<string, string>();
  private readonly enums = new Map<string, string>();
  private readonly enumNames = new Map<string, string>();
  private readonly scalars = new Set<string>();
  private readonly connections = new Map<string, string>();

  constructor(private readonly document: OpenApiDocument) {}

  private component(name: string): Schema {
    const schema = this.document.components.schemas[name];
    if (!schema) throw new Error(`components/schemas/${name}: not in the document`);
    return schema;
  }

  private resolve<T extends { $ref?: string }>(node: T, kind: string): T {
    if (!node.$ref) return node;
    const prefix = `#/components/${kind}/`;
    if (!node.$ref.startsWith(prefix)) throw new Error(`${node.$ref}: not a ${kind} component`);
    const section = (this.document.components as unknown as Record<string, Record<string, T>>)[
      kind
    ];
    const found = section?.[refName(node.$ref)];
    if (!found) throw new Error(`${node.$ref}: not in the document`);
    return this.resolve(found, kind);
  }

  /**
   * The named type of a schema, without its nullability; `hint` names an enum defined in
   * place (a parameter's component name, or the type and property).
   */
  private typeOf(schema: Schema, where: string, input: boolean, hint?: string): string {
    if (schema.$ref) {
      const name = refName(schema.$ref);
      const target = this.component(name);
      if (target.type === 'object') return this.objectType(name, input);
      if (target.enum) return this.enumType(name, target);
      return this.typeOf({ ...target, $ref: undefined }, `components/schemas/${name}`, input, name);
    }
    const types = [schema.type ?? []].flat().filter((t) => t !== 'null');
    if (types.length !== 1) throw new Error(`${where}: cannot map ${JSON.stringify(schema)}`);
    switch (types[0]) {
      case 'string':
        if (schema.enum) {
          if (!hint) throw new Error(`${where}: an enum without a name`);
          return this.enumType(hint, schema);
        }
        if (schema.format === 'uuid') return 'ID';
        if (schema.format === 'date-time') {
          this.scalars.add('DateTime');
          return 'DateTime';
        }
        return 'String';
      case 'integer':
        return 'Int';
      case 'number':
        return 'Float';
      case 'boolean':
        return 'Boolean';
      case 'array':
        if (!schema.items) throw new Error(`${where}: an array without items`);
        return `[${this.fieldType(schema.items, true, `${where}/items`, input, hint && `${hint}Item`)}]`;
      default:
        throw new Error(`${where}: cannot map ${JSON.stringify(schema).slice(0, 120)}`);
    }
  }

  /** A schema's type with `!` when it is required and does not allow null. */
  private fieldType(
    schema: Schema,
    required: boolean,
    where: string,
    input: boolean,
    hint?: string,
  ): string {
    const target = schema.$ref ? this.component(refName(schema.$ref)) : schema;
    const nullable = [target.type ?? []].flat().includes('null');
    return `${this.typeOf(schema, where, input, hint)}${required && !nullable ? '!' : ''}`;
  }

  private fields(name: string, schema: Schema, input: boolean): string {
    const where = `components/schemas/${name}`;
    const properties = Object.entries(schema.properties ?? {});
    if (properties.length === 0) throw new Error(`${where}: an object without properties`);
    const required = new Set(schema.required ?? []);
    return properties
      .map(([property, value]) => {
        const type = this.fieldType(
          value,
          required.has(property),
          `${where}/${property}`,
          input,
          `${name.replace(/Request$/, '')}${pascal(property)}`,
        );
        return `${described(value.description, '  ')}  ${property}: ${type}`;
      })
      .join('\n');
  }

  /**
   * The type of an object component: itself, or its input twin (`<Name>Input`, without a
   * trailing `Request`). Registered before its fields are, so that a type naming itself
   * (directly or not) ends.
   */
  private objectType(name: string, input: boolean): string {
    const typeName = input ? `${name.replace(/Request$/, '')}Input` : name;
    const types = input ? this.inputs : this.outputs;
    if (!types.has(typeName)) {
      types.set(typeName, '');
      const schema = this.component(name);
      const fields = this.fields(name, schema, input);
      types.set(
        typeName,
        `${described(schema.description)}${input ? 'input' : 'type'} ${typeName} {\n${fields}\n}`,
      );
    }
    return typeName;
  }

  private enumType(name: string, schema: Schema): string {
    // An enum defined in place twice with the same values (a field copied into another
    // type) is one enum, named where it was met first.
    const key = JSON.stringify(schema.enum);
    const same = this.enumNames.get(key);
    if (same) return same;
    if (this.enums.has(name)) {
      throw new Error(`components/schemas/${name}: an enum of that name has other values`);
    }
    this.enumNames.set(key, name);
    // A null among the values is the field's nullability, not a value.
    const values = (schema.enum ?? [])
      .filter((value) => value !== null)
      .map((value) => {
        if (typeof value !== 'string') throw new Error(`components/schemas/${name}: not strings`);
        const graphqlName = enumValue(value);
        // Its value in REST, for whoever reads both.
        return `${described(`\`${value}\``, '  ')}  ${graphqlName}`;
      });
    this.enums.set(name, `${described(schema.description)}enum ${name} {\n${values.join('\n')}\n}`);
    return name;
  }

  /** The item schema of a keyset page (`items` and `nextCursor`), or null. */
  private pageItems(schema: Schema): Schema | null {
    const target = schema.$ref ? this.component(refName(schema.$ref)) : schema;
    const names = Object.keys(target.properties ?? {}).sort();
    if (names.join() !== 'items,nextCursor') return null;
    return target.properties!.items!.items ?? null;
  }

  private connection(itemSchema: Schema, where: string): string {
    const item = this.typeOf(itemSchema, where, false);
    const name = `${item}Connection`;
    if (!this.connections.has(name)) {
      this.connections.set(
        name,
        `${described(`A page of ${item} items, in the order of the listing.`)}type ${name} {\n  nodes: [${item}!]!\n  pageInfo: PageInfo!\n}`,
      );
    }
    return name;
  }

  private result(operation: Operation, where: string): { type: string; page: boolean } {
    const [status, response] =
      Object.entries(operation.responses).find(([code]) => code.startsWith('2')) ?? [];
    if (!status || !response) throw new Error(`${where}: no 2xx response`);
    const resolved = this.resolve(response, 'responses');
    const schema = resolved.content?.['application/json']?.schema;
    if (!schema) return { type: 'Boolean!', page: false };
    const items = this.pageItems(schema);
    if (items) return { type: `${this.connection(items, where)}!`, page: true };
    // A read that may answer 404 gives null where REST says 404.
    const missing = '404' in operation.responses && status === '200';
    return { type: `${this.typeOf(schema, where, false)}${missing ? '' : '!'}`, page: false };
  }

  private arguments(
    operation: Operation,
    shared: Parameter[],
    page: boolean,
    where: string,
  ): string[] {
    const args: string[] = [];
    // The path item's parameters, then the operation's own (which override them by name).
    const own = new Set(
      (operation.parameters ?? []).map((p) => this.resolve(p, 'parameters').name),
    );
    const inherited = shared.filter((p) => !own.has(this.resolve(p, 'parameters').name));
    for (const raw of [...inherited, ...(operation.parameters ?? [])]) {
      const parameter = this.resolve(raw, 'parameters');
      if (parameter.in !== 'path' && parameter.in !== 'query') continue;
      let name = parameter.name;
      if (page && name === 'limit') name = 'first';
      if (page && name === 'cursor') name = 'after';
      const type = this.fieldType(
        parameter.schema,
        parameter.required === true,
        `${where}/parameters/${parameter.name}`,
        true,
        raw.$ref ? refName(raw.$ref) : `${pascal(operation.operationId!)}${pascal(parameter.name)}`,
      );
      args.push(`${described(parameter.description, '    ')}    ${name}: ${type}`);
    }
    const body = operation.requestBody && this.resolve(operation.requestBody, 'requestBodies');
    const bodySchema = body?.content?.['application/json']?.schema;
    if (body && bodySchema) {
      const type = this.fieldType(bodySchema, body.required === true, `${where}/requestBody`, true);
      args.push(`    input: ${type}`);
    }
    return args;
  }

  build(): string {
    const query: string[] = [];
    const mutation: string[] = [];
    for (const [path, item] of Object.entries(this.document.paths)) {
      if (!path.startsWith('/api/')) continue;
      for (const method of METHODS) {
        const operation = item[method];
        if (!operation?.operationId) continue;
        const where = `paths/${path}/${method}`;
        const { type, page } = this.result(operation, where);
        const args = this.arguments(operation, item.parameters ?? [], page, where);
        const name = method === 'get' ? queryName(operation.operationId) : operation.operationId;
        const text = [operation.summary, operation.description].filter(Boolean).join('\n\n');
        const field = `${described(text, '  ')}  ${name}${args.length > 0 ? `(\n${args.join('\n')}\n  )` : ''}: ${type}`;
        (method === 'get' ? query : mutation).push(field);
      }
    }
    const parts = [
      ...[...this.scalars].map(
        (name) =>
          `${described('An RFC 3339 date and time in UTC, as the REST API gives it.')}scalar ${name}`,
      ),
      `${described('Where a connection ends, and whether more follows.')}type PageInfo {\n${described('Pass it as `after` for the next page; null on the last page.', '  ')}  endCursor: String\n  hasNextPage: Boolean!\n}`,
      `type Query {\n${query.join('\n')}\n}`,
      `type Mutation {\n${mutation.join('\n')}\n}`,
      ...this.connections.values(),
      ...this.outputs.values(),
      ...this.inputs.values(),
      ...this.enums.values(),
    ];
    // Validated and printed by graphql-js: an invalid schema stops `npm run generate`.
    return `${printSchema(buildSchema(parts.join('\n\n')))}\n`;
  }
}

/** generated/schema.graphql's text from the bundled OpenAPI document. */
export function buildGraphqlSchema(document: object): string {
  return new SdlBuilder(document as OpenApiDocument).build();
}
