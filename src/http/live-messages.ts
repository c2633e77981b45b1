import type { ErrorObject } from 'ajv/dist/2020.js';
import type {
  ClientMessage,
  CloseCodes,
  ErrorMessage,
  Limits,
  ServerMessage,
} from '../../generated/asyncapi.js';
import type { ProblemCode, ProblemItem } from '../api-types.js';
import { validationItems } from './error-handler.js';
import { problemTypeOf } from './problem-types.js';
import { createAjv } from './validation.js';
import { componentRefsToDefs, componentSchemas } from './schema-defs.js';

/**
 * The WebSocket's contract at run time (openapi/asyncapi.yaml, as generated/asyncapi.json
 * holds it): every client frame is read against the client's messages, and answered with
 * an `error` frame when it is not one; the server's messages can be checked against theirs
 * (in development and tests, as responses and webhook payloads are).
 */

type Json = Record<string, unknown>;
interface Ref {
  $ref: string;
}

/** The parts of the AsyncAPI document this module reads. */
export interface LiveDocument {
  operations: Record<
    string,
    { action: 'send' | 'receive'; messages: Ref[]; reply?: { messages?: Ref[] } }
  >;
  components: { messages: Record<string, { payload: Ref }>; schemas: Record<string, unknown> };
  'x-close-codes': Record<string, { code: number }>;
  'x-limits': Record<string, number>;
}

export interface MessageSides {
  /** Message name (its key in components.messages) → the name of its payload's schema. */
  client: Map<string, string>;
  server: Map<string, string>;
}

/** The object a local $ref (`#/a/b`) of `document` points at. */
function at(document: unknown, ref: string): unknown {
  return ref
    .slice(2)
    .split('/')
    .map((token) => token.replaceAll('~1', '/').replaceAll('~0', '~'))
    .reduce<unknown>((node, token) => (node as Json | undefined)?.[token], document);
}

/**
 * Who sends which message, from the operations (written from the server's side): the
 * messages of a `receive` operation are the client's; those of a `send` operation and of
 * every reply are the server's.
 */
export function messageSides(document: LiveDocument): MessageSides {
  const sides: MessageSides = { client: new Map(), server: new Map() };
  const add = (side: Map<string, string>, ref: Ref) => {
    // An operation names a channel's message, itself a $ref to components/messages.
    const messageRef = (at(document, ref.$ref) as Partial<Ref> | undefined)?.$ref ?? ref.$ref;
    const name = messageRef.split('/').at(-1) ?? '';
    const payload = (at(document, messageRef) as { payload?: Partial<Ref> } | undefined)?.payload;
    if (!payload?.$ref?.startsWith(componentSchemas))
      throw new Error(`Message ${name}: its payload must be a $ref to components/schemas.`);
    side.set(name, payload.$ref.slice(componentSchemas.length));
  };
  for (const operation of Object.values(document.operations)) {
    for (const ref of operation.messages)
      add(operation.action === 'receive' ? sides.client : sides.server, ref);
    for (const ref of operation.reply?.messages ?? []) add(sides.server, ref);
  }
  for (const name of sides.client.keys())
    if (sides.server.has(name)) throw new Error(`Message ${name} is sent by both sides.`);
  return sides;
}

/** An `error` frame: the problem of `code` (its type, title and HTTP status), for message `id`. */
export function liveError(
  code: ProblemCode,
  detail: string,
  id?: string,
  errors?: ProblemItem[],
): ErrorMessage {
  const { type, title, status } = problemTypeOf(code);
  const problem: ErrorMessage['problem'] = { type, title, status, code, detail };
  if (errors) problem.errors = errors.slice(0, 100);
  return id === undefined ? { type: 'error', problem } : { type: 'error', id, problem };
}

export type ClientMessageReading =
  { ok: true; message: ClientMessage } | { ok: false; error: ErrorMessage };

export class LiveMessageError extends Error {
  constructor(
    readonly messageType: string,
    readonly errors: ErrorObject[],
  ) {
    const details = errors.map((error) => `${error.instancePath || '/'} ${error.message ?? ''}`);
    super(`A ${messageType} message breaks openapi/asyncapi.yaml: ${details.join('; ')}`);
    this.name = 'LiveMessageError';
  }
}

export interface LiveContract {
  /**
   * A client's frame as the message it is, or the `error` frame to answer it with: not a
   * text frame or not JSON (MALFORMED_REQUEST), not one of the client's messages
   * (VALIDATION_ERROR, each offending value in `errors`). The error carries the frame's
   * `id` when it has a readable one. About 3.5 µs for a `subscribe` here. The size limit
   * is not checked here: it is the socket's `maxPayload` (`limits.maxMessageBytes`; a
   * larger frame closes the socket with 1009).
   */
  readClientMessage(frame: string | Uint8Array, isBinary?: boolean): ClientMessageReading;
  /**
   * Throws a LiveMessageError when `message` is not one the server may send. It costs
   * about 40 µs for a post's event here (1.4 µs for a `pong`): check an event once before
   * its fan-out, not once per socket.
   */
  checkServerMessage(message: ServerMessage): void;
  /** The `type`s of the client's messages and of the server's. */
  readonly clientTypes: readonly string[];
  readonly serverTypes: readonly string[];
  readonly closeCodes: CloseCodes;
  readonly limits: Limits;
}

const typeOf = (document: LiveDocument, schema: string): string => {
  const type = (
    document.components.schemas[schema] as { properties?: { type?: { const?: unknown } } }
  )?.properties?.type?.const;
  if (typeof type !== 'string') throw new Error(`Schema ${schema} has no constant \`type\`.`);
  return type;
};

/** Schema names by message `type` (several for the server's `event`, one per channel). */
function byType(document: LiveDocument, side: Map<string, string>): Map<string, string[]> {
  const types = new Map<string, string[]>();
  for (const schema of side.values()) {
    const type = typeOf(document, schema);
    types.set(type, [...(types.get(type) ?? []), schema]);
  }
  return types;
}

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const readableId = (value: Json): string | undefined =>
  typeof value.id === 'string' && value.id.length >= 1 && value.id.length <= 64
    ? value.id
    : undefined;

/** The validator of each message schema, compiled at its first message. */
function validators(document: LiveDocument) {
  const ajv = createAjv({ coerceTypes: false, useDefaults: false });
  ajv.addSchema({ $id: 'asyncapi', $defs: componentRefsToDefs(document.components.schemas) });
  const compiled = new Map<string, ReturnType<typeof ajv.compile>>();
  /** The validator of the schema named `schema`, or of the part of it at `pointer`. */
  return (schema: string, pointer = '') => {
    const ref = `asyncapi#/$defs/${schema}${pointer}`;
    let validate = compiled.get(ref);
    if (!validate) {
      validate = ajv.compile({ $ref: ref });
      compiled.set(ref, validate);
    }
    return validate;
  };
}

export function createLiveContract(document: LiveDocument): LiveContract {
  const sides = messageSides(document);
  const client = byType(document, sides.client);
  const server = byType(document, sides.server);
  const validatorOf = validators(document);
  const clientTypes = [...client.keys()];

  const readClientMessage = (
    frame: string | Uint8Array,
    isBinary = false,
  ): ClientMessageReading => {
    if (isBinary) return refused(liveError('MALFORMED_REQUEST', 'Send messages as text frames.'));
    let value: unknown;
    try {
      value = JSON.parse(typeof frame === 'string' ? frame : Buffer.from(frame).toString('utf8'));
    } catch {
      return refused(liveError('MALFORMED_REQUEST', 'The message is not valid JSON.'));
    }
    if (!isObject(value))
      return refused(liveError('MALFORMED_REQUEST', 'The message is not a JSON object.'));
    const id = readableId(value);
    const [schema] = typeof value.type === 'string' ? (client.get(value.type) ?? []) : [];
    if (!schema) {
      const item = {
        location: 'body' as const,
        pointer: '/type',
        message: `must be one of ${clientTypes.join(', ')}`,
      };
      return refused(
        liveError('VALIDATION_ERROR', 'The message is not one the client may send.', id, [item]),
      );
    }
    const validate = validatorOf(schema);
    if (validate(value)) return { ok: true, message: value as ClientMessage };
    const items = validationItems(validate.errors ?? [], 'body');
    return refused(
      liveError('VALIDATION_ERROR', `The ${String(value.type)} message is invalid.`, id, items),
    );
  };

  const checkServerMessage = (message: ServerMessage): void => {
    const type = (message as { type?: unknown }).type;
    const schemas = typeof type === 'string' ? server.get(type) : undefined;
    if (!schemas) {
      throw new LiveMessageError(String(type), [
        {
          instancePath: '/type',
          keyword: 'enum',
          params: {},
          schemaPath: '',
          message: 'is not a server message type',
        },
      ]);
    }
    // An `event` has one schema per channel: the one whose `channel` it names is checked
    // (checking each in turn took 85 µs for a post's event, 3 schemas); with none, the
    // errors told are those of the schema it came nearest to.
    const channel = (message as { channel?: unknown }).channel;
    const named =
      schemas.length > 1
        ? schemas.filter((schema) => validatorOf(schema, '/properties/channel')(channel) === true)
        : schemas;
    let nearest: ErrorObject[] | undefined;
    for (const schema of named.length > 0 ? named : schemas) {
      const validate = validatorOf(schema);
      if (validate(message)) return;
      const errors = validate.errors ?? [];
      if (!nearest || errors.length < nearest.length) nearest = errors;
    }
    throw new LiveMessageError(type as string, nearest ?? []);
  };

  const closeCodes = Object.fromEntries(
    Object.entries(document['x-close-codes']).map(([name, { code }]) => [name, code]),
  ) as unknown as CloseCodes;
  return Object.freeze({
    readClientMessage,
    checkServerMessage,
    clientTypes,
    serverTypes: [...server.keys()],
    closeCodes: Object.freeze(closeCodes),
    limits: Object.freeze({ ...document['x-limits'] }) as unknown as Limits,
  });
}

const refused = (error: ErrorMessage): ClientMessageReading => ({ ok: false, error });
