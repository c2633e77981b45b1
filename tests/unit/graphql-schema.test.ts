import type { GraphQLEnumType, GraphQLObjectType } from 'graphql';
import { buildSchema, printType } from 'graphql';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { buildGraphqlSchema } from '../../scripts/graphql-artifacts.js';
import { generatedGraphqlSchemaPath } from '../../src/paths.js';

/**
 * The rules that derive generated/schema.graphql from the contract
 * (scripts/graphql-artifacts.ts), on a small document of their own, and on the project's.
 */
const id = { type: 'string', format: 'uuid' };
const document = {
  paths: {
    '/health': { get: { operationId: 'getHealth', responses: { '200': { description: 'ok' } } } },
    '/api/notes': {
      get: {
        operationId: 'listNotes',
        summary: 'Notes, newest first.',
        parameters: [
          { $ref: '#/components/parameters/Limit' },
          { name: 'cursor', in: 'query', schema: { type: 'string' } },
          { name: 'state', in: 'query', schema: { type: 'string', enum: ['open', 'done'] } },
          { name: 'If-None-Match', in: 'header', schema: { type: 'string' } },
        ],
        responses: { '200': { $ref: '#/components/responses/NotePage' } },
      },
      post: {
        operationId: 'createNote',
        requestBody: {
          required: true,
          content: {
            'application/json': { schema: { $ref: '#/components/schemas/CreateNoteRequest' } },
          },
        },
        responses: {
          '201': {
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Note' } } },
          },
        },
      },
    },
    '/api/notes/{id}': {
      parameters: [{ name: 'id', in: 'path', required: true, schema: id }],
      get: {
        operationId: 'getNote',
        responses: {
          '200': {
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Note' } } },
          },
          '404': { description: 'none' },
        },
      },
      delete: { operationId: 'deleteNote', responses: { '204': { description: 'gone' } } },
    },
  },
  components: {
    parameters: { Limit: { name: 'limit', in: 'query', schema: { type: 'integer' } } },
    responses: {
      NotePage: {
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['items', 'nextCursor'],
              properties: {
                items: { type: 'array', items: { $ref: '#/components/schemas/Note' } },
                nextCursor: { type: ['string', 'null'] },
              },
            },
          },
        },
      },
    },
    schemas: {
      Note: {
        type: 'object',
        description: 'A note.',
        required: ['id', 'text', 'kind', 'doneAt'],
        properties: {
          id: { $ref: '#/components/schemas/Id' },
          text: { type: 'string', description: 'What it says.' },
          kind: { $ref: '#/components/schemas/NoteKind' },
          doneAt: { type: ['string', 'null'], format: 'date-time' },
          tags: { type: 'array', items: { type: 'string' } },
          reason: { type: ['string', 'null'], enum: ['user.asked', 'expired', null] },
        },
      },
      NoteKind: { type: 'string', enum: ['plainText', 'todo-item'] },
      Id: id,
      CreateNoteRequest: {
        type: 'object',
        required: ['text'],
        properties: { text: { type: 'string' }, kind: { $ref: '#/components/schemas/NoteKind' } },
      },
    },
  },
};

describe('the GraphQL schema derived from the contract', () => {
  const schema = buildSchema(buildGraphqlSchema(document));
  const field = (type: 'Query' | 'Mutation', name: string) =>
    (schema.getType(type) as GraphQLObjectType).getFields()[name];

  it('has a query per read under /api/ and a mutation per write, named by operationId', () => {
    expect(Object.keys((schema.getType('Query') as GraphQLObjectType).getFields())).toEqual([
      'notes',
      'note',
    ]);
    expect(Object.keys((schema.getType('Mutation') as GraphQLObjectType).getFields())).toEqual([
      'createNote',
      'deleteNote',
    ]);
    expect(field('Query', 'notes')!.description).toBe('Notes, newest first.');
  });

  it('makes a keyset page a connection with first and after, and header parameters none', () => {
    const notes = field('Query', 'notes')!;
    expect(String(notes.type)).toBe('NoteConnection!');
    expect(notes.args.map((arg) => `${arg.name}: ${String(arg.type)}`)).toEqual([
      'first: Int',
      'after: String',
      'state: ListNotesState',
    ]);
    expect(printType(schema.getType('NoteConnection')!)).toContain('nodes: [Note!]!');
  });

  it('gives null where REST says 404, true for a 204, and path parameters of the path item', () => {
    expect(String(field('Query', 'note')!.type)).toBe('Note');
    expect(field('Query', 'note')!.args.map((arg) => String(arg.type))).toEqual(['ID!']);
    expect(String(field('Mutation', 'deleteNote')!.type)).toBe('Boolean!');
    expect(String(field('Mutation', 'createNote')!.args[0]!.type)).toBe('CreateNoteInput!');
  });

  it('carries types, nullability, enums and descriptions over', () => {
    const note = printType(schema.getType('Note')!);
    expect(note).toContain('"""A note."""');
    expect(note).toContain('"""What it says."""\n  text: String!');
    expect(note).toContain('id: ID!');
    expect(note).toContain('kind: NoteKind!');
    expect(note).toContain('doneAt: DateTime\n');
    expect(note).toContain('tags: [String!]\n');
    expect(note).toContain('reason: NoteReason\n');
    const kinds = schema.getType('NoteKind') as GraphQLEnumType;
    expect(kinds.getValues().map((value) => value.name)).toEqual(['PLAIN_TEXT', 'TODO_ITEM']);
    const reasons = schema.getType('NoteReason') as GraphQLEnumType;
    expect(reasons.getValues().map((value) => [value.name, value.description])).toEqual([
      ['USER_ASKED', '`user.asked`'],
      ['EXPIRED', '`expired`'],
    ]);
  });

  it('stops at what it cannot map, naming the place', () => {
    const withUnion = structuredClone(document) as unknown as {
      components: { schemas: { Note: { properties: Record<string, unknown> } } };
    };
    withUnion.components.schemas.Note.properties.text = { oneOf: [id, { type: 'integer' }] };
    expect(() => buildGraphqlSchema(withUnion)).toThrow('components/schemas/Note/text: cannot map');
    // Two enums defined in place whose names meet, with other values: not one merged silently.
    const clash = structuredClone(document) as unknown as {
      components: { schemas: Record<string, unknown> };
    };
    clash.components.schemas.NoteReason = { type: 'string', enum: ['other'] };
    (clash.components.schemas.Note as { properties: Record<string, unknown> }).properties.why = {
      $ref: '#/components/schemas/NoteReason',
    };
    expect(() => buildGraphqlSchema(clash)).toThrow(
      'components/schemas/NoteReason: an enum of that name has other values',
    );
  });

  it('is what generated/schema.graphql holds for the project’s contract, and valid', async () => {
    const committed = await readFile(generatedGraphqlSchemaPath, 'utf8');
    const spec = JSON.parse(await readFile('generated/openapi.json', 'utf8')) as object;
    expect(buildGraphqlSchema(spec)).toBe(committed);
    const project = buildSchema(committed);
    const posts = (project.getType('Query') as GraphQLObjectType).getFields().posts!;
    expect(String(posts.type)).toBe('PostSummaryConnection!');
    expect(String((project.getType('Query') as GraphQLObjectType).getFields().post!.type)).toBe(
      'Post',
    );
  });
});
