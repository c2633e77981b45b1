import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import type { PGlite } from '@electric-sql/pglite';

/**
 * Serves one PGlite database to PostgreSQL clients (node-postgres, psql, drizzle-kit) on a
 * Unix socket.
 *
 * PGlite is a single PostgreSQL session, so every client shares it. What keeps them apart:
 *
 * - The session is lent to one connection at a time, from its first message until the
 *   backend is idle again (ReadyForQuery with status I): a transaction, or an extended
 *   query between Parse and Sync, is never interleaved with another connection's
 *   statements, and a ROLLBACK undoes only its own work. Others wait their turn.
 * - Named prepared statements and portals are per session in PostgreSQL, and two clients
 *   running the same code prepare the same names: each connection's names are rewritten
 *   with a prefix of its own, and its statements are deallocated when it leaves (with
 *   @electric-sql/pglite-socket 0.2.17, 135 of 200 concurrent queries on a pool of 10
 *   failed with "prepared statement already exists", and a departed client's statements
 *   stayed behind for the next one to trip over).
 * - A connection that leaves mid-transaction is rolled back.
 *
 * What is still shared: session settings (SET), and names prepared in SQL (PREPARE) rather
 * than through the protocol. Code that, inside a transaction, waits for a query on another
 * connection waits until that query times out (PostgreSQL would only block on a
 * conflicting row lock).
 */

export interface WireServerOptions {
  /** The socket file, `<folder>/.s.PGSQL.5432` so that `psql -h <folder>` finds it. */
  path: string;
  /** Connections beyond this get PostgreSQL's own "too many clients" error. */
  maxConnections: number;
  /** Problems no client is told about (the engine failing, a cleanup that failed). */
  onError?: (error: unknown) => void;
}

export interface WireServer {
  /** Starts answering queries; until then clients are told the database is starting up. */
  serve(db: PGlite): void;
  /** Stops listening, ends every connection (rolling back what is open) and waits for that. */
  close(): Promise<void>;
}

const PROTOCOL_3 = 3;
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const MAX_NAME_BYTES = 63; // NAMEDATALEN - 1: longer names are cut, and could then collide
const STARTUP_TIMEOUT_MS = 60_000; // PostgreSQL's authentication_timeout
const MAX_STARTUP_BYTES = 10_000; // PostgreSQL's own limit on a startup packet
const LONG_WAIT_MS = 5_000;

const byte = (char: string) => char.charCodeAt(0);

function fatal(code: string, message: string): Buffer {
  const fields = Buffer.concat(
    [
      ['S', 'FATAL'],
      ['V', 'FATAL'],
      ['C', code],
      ['M', message],
    ].map(([key, value]) => Buffer.from(`${key}${value}\0`, 'utf8')),
  );
  return frame(byte('E'), Buffer.concat([fields, Buffer.from([0])]));
}

function frame(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type;
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const cString = (text: string) => Buffer.from(`${text}\0`, 'utf8');
const syncMessage = () => frame(byte('S'), Buffer.alloc(0));
const queryMessage = (sql: string) => frame(byte('Q'), cString(sql));
const closeStatement = (name: string) =>
  frame(byte('C'), Buffer.concat([Buffer.from('S'), cString(name)]));

/** Reads a NUL-terminated string; returns it and the offset after it. */
function readCString(buffer: Buffer, offset: number): [string, number] {
  const end = buffer.indexOf(0, offset);
  if (end < 0) throw new Error('malformed message: unterminated string');
  return [buffer.toString('utf8', offset, end), end + 1];
}

/**
 * Follows the backend's message stream across chunks, so that after a batch we know
 * whether the last thing it said was "ready for query, idle".
 */
class BackendTracker {
  #header = Buffer.alloc(5);
  #headerBytes = 0;
  #remaining = 0;
  #type = 0;
  #lastType = 0;
  #status = 0;

  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#remaining === 0 && this.#headerBytes < 5) {
        this.#header[this.#headerBytes++] = chunk[i++]!;
        if (this.#headerBytes === 5) {
          this.#type = this.#header[0]!;
          this.#remaining = this.#header.readInt32BE(1) - 4;
          if (this.#remaining === 0) this.#complete();
        }
        continue;
      }
      const take = Math.min(this.#remaining, chunk.length - i);
      if (this.#type === byte('Z')) this.#status = chunk[i]!;
      i += take;
      this.#remaining -= take;
      if (this.#remaining === 0) this.#complete();
    }
  }

  #complete(): void {
    this.#lastType = this.#type;
    this.#headerBytes = 0;
  }

  /** The backend finished a cycle and no transaction is open. */
  get idle(): boolean {
    return (
      this.#headerBytes === 0 &&
      this.#remaining === 0 &&
      this.#lastType === byte('Z') &&
      this.#status === byte('I')
    );
  }
}

/** First come, first served: who may talk to the one session. */
class SessionLock {
  #holder: Connection | null = null;
  readonly #waiting: { connection: Connection; grant: () => void }[] = [];
  #watch: NodeJS.Timeout | undefined;
  readonly #onLongWait: (message: string) => void;

  constructor(onLongWait: (message: string) => void) {
    this.#onLongWait = onLongWait;
  }

  holds(connection: Connection): boolean {
    return this.#holder === connection;
  }

  acquire(connection: Connection): Promise<void> {
    if (this.#holder === connection) return Promise.resolve();
    if (!this.#holder) {
      this.#holder = connection;
      return Promise.resolve();
    }
    this.#watchHolder();
    return new Promise((grant) => this.#waiting.push({ connection, grant }));
  }

  release(connection: Connection): void {
    if (this.#holder !== connection) return;
    clearTimeout(this.#watch);
    this.#watch = undefined;
    const next = this.#waiting.shift();
    this.#holder = next?.connection ?? null;
    next?.grant();
    if (this.#waiting.length > 0) this.#watchHolder();
  }

  /**
   * A transaction left open (a psql prompt after BEGIN) holds every other client up,
   * the server's requests included, which then time out: say who, once it lasts.
   */
  #watchHolder(): void {
    if (this.#watch) return;
    const holder = this.#holder;
    this.#watch = setTimeout(() => {
      if (this.#holder !== holder || !holder) return;
      this.#onLongWait(
        `connection ${holder.id} has held the session for ${LONG_WAIT_MS / 1000} s (an open ` +
          `transaction, or a long query), and ` +
          `${this.#waiting.length} other connection(s) wait for it: the embedded database is ` +
          'one session, so an open transaction holds every other client up',
      );
    }, LONG_WAIT_MS);
    this.#watch.unref();
  }
}

class Connection {
  readonly id: number;
  readonly #socket: Socket;
  readonly #server: WireServerImpl;
  #inbox: Buffer = Buffer.alloc(0);
  #started = false;
  #rejected: Buffer | null;
  #closed = false;
  #cleaned = false;
  #running = false;
  readonly #statements = new Set<string>();
  readonly #prefix: string;
  readonly done: Promise<void>;
  #resolveDone!: () => void;

  constructor(id: number, socket: Socket, server: WireServerImpl, rejection: Buffer | null) {
    this.id = id;
    this.#socket = socket;
    this.#server = server;
    this.#rejected = rejection;
    this.#prefix = `c${this.id}.`;
    this.done = new Promise((resolve) => (this.#resolveDone = resolve));
    socket.setTimeout(STARTUP_TIMEOUT_MS, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      this.#inbox = this.#inbox.length ? Buffer.concat([this.#inbox, chunk]) : chunk;
      this.#schedule();
    });
    socket.on('error', () => undefined); // 'close' follows; a reset client is not news
    socket.on('close', () => {
      this.#closed = true;
      this.#schedule();
    });
  }

  /** Ends the connection the way PostgreSQL does when it shuts down. */
  terminate(): void {
    if (this.#closed) return;
    const socket = this.#socket;
    socket.write(fatal('57P01', 'terminating connection due to administrator command'), () =>
      socket.destroy(),
    );
    // A client that does not read its socket must not hold the shutdown up.
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  #schedule(): void {
    if (this.#running || this.#cleaned) return;
    this.#running = true;
    this.#run()
      .catch((error: unknown) => {
        this.#server.reportError(error);
        this.#socket.destroy();
      })
      .finally(() => {
        this.#running = false;
        if (this.#cleaned) return;
        if (this.#closed || this.#hasMessage()) this.#schedule();
      });
  }

  async #run(): Promise<void> {
    for (;;) {
      if (this.#closed) return this.#cleanup();
      if (!this.#started) {
        if (!(await this.#startup())) return;
        continue;
      }
      const batch = this.#takeMessages();
      if (!batch) return;
      if (batch.messages.length > 0) {
        await this.#server.lock.acquire(this);
        if (this.#closed) return this.#cleanup();
        if (await this.#execute(Buffer.concat(batch.messages), true)) {
          this.#server.lock.release(this);
        }
      }
      if (batch.terminate) {
        this.#socket.end();
        this.#closed = true;
      }
    }
  }

  /** Handles what comes before the first query: SSL and GSS probes, cancels, the startup packet. */
  async #startup(): Promise<boolean> {
    if (this.#inbox.length < 8) return false;
    const length = this.#inbox.readInt32BE(0);
    if (length < 8 || length > MAX_STARTUP_BYTES) throw new Error('not a PostgreSQL client');
    if (this.#inbox.length < length) return false;
    const code = this.#inbox.readInt32BE(4);
    const packet = this.#inbox.subarray(0, length);
    this.#inbox = this.#inbox.subarray(length);

    if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
      this.#socket.write('N'); // not offered; the client goes on in plain text
      return true;
    }
    if (code === CANCEL_REQUEST || code >>> 16 !== PROTOCOL_3) {
      // A query runs to its end in PGlite: there is nothing a cancel could interrupt.
      this.#socket.end();
      return false;
    }
    const refusal = this.#rejected ?? this.#server.startupRefusal();
    if (refusal) {
      this.#socket.end(refusal);
      return false;
    }
    // The startup answer ends with the session's transaction status: ask for it when idle.
    await this.#server.lock.acquire(this);
    if (this.#closed) {
      await this.#cleanup();
      return false;
    }
    if (await this.#execute(packet, true)) this.#server.lock.release(this);
    this.#started = true;
    this.#socket.setTimeout(0);
    return true;
  }

  #hasMessage(): boolean {
    if (this.#inbox.length < 5) return false;
    if (!this.#started) return this.#inbox.length >= this.#inbox.readInt32BE(0);
    return this.#inbox.length >= 1 + this.#inbox.readInt32BE(1);
  }

  /** The complete messages received so far, names rewritten; a Terminate ends the batch. */
  #takeMessages(): { messages: Buffer[]; terminate: boolean } | null {
    const messages: Buffer[] = [];
    let offset = 0;
    let terminate = false;
    while (this.#inbox.length - offset >= 5) {
      const length = this.#inbox.readInt32BE(offset + 1);
      if (length < 4) throw new Error('malformed message: bad length');
      const size = 1 + length;
      if (this.#inbox.length - offset < size) break;
      const message = this.#inbox.subarray(offset, offset + size);
      offset += size;
      // PGlite would end its one backend on a Terminate: it only ends this connection.
      if (message[0] === byte('X')) {
        terminate = true;
        break;
      }
      messages.push(this.#scope(message));
    }
    this.#inbox = this.#inbox.subarray(offset);
    return messages.length || terminate ? { messages, terminate } : null;
  }

  #scopedName(name: string): string {
    if (name === '') return name; // the unnamed statement and portal live until the next Sync
    const scoped = this.#prefix + name;
    if (Buffer.byteLength(scoped) <= MAX_NAME_BYTES) return scoped;
    return this.#prefix + createHash('sha256').update(name).digest('hex').slice(0, 40);
  }

  /** Gives this connection's statement and portal names a prefix of its own. */
  #scope(message: Buffer): Buffer {
    const type = String.fromCharCode(message[0]!);
    const body = message.subarray(5);
    switch (type) {
      case 'P': {
        const [name, rest] = readCString(body, 0);
        const scoped = this.#scopedName(name);
        if (scoped) this.#statements.add(scoped);
        return frame(message[0]!, Buffer.concat([cString(scoped), body.subarray(rest)]));
      }
      case 'B': {
        const [portal, afterPortal] = readCString(body, 0);
        const [statement, rest] = readCString(body, afterPortal);
        return frame(
          message[0]!,
          Buffer.concat([
            cString(this.#scopedName(portal)),
            cString(this.#scopedName(statement)),
            body.subarray(rest),
          ]),
        );
      }
      case 'E': {
        const [portal, rest] = readCString(body, 0);
        return frame(
          message[0]!,
          Buffer.concat([cString(this.#scopedName(portal)), body.subarray(rest)]),
        );
      }
      case 'D':
      case 'C': {
        const kind = body.subarray(0, 1);
        const [name, rest] = readCString(body, 1);
        const scoped = this.#scopedName(name);
        if (type === 'C' && kind.toString() === 'S') this.#statements.delete(scoped);
        return frame(message[0]!, Buffer.concat([kind, cString(scoped), body.subarray(rest)]));
      }
      default:
        return message;
    }
  }

  /** Runs messages in the session; tells whether the backend is idle again. */
  async #execute(messages: Buffer, answer: boolean): Promise<boolean> {
    const db = this.#server.db!;
    const tracker = new BackendTracker();
    await db.runExclusive(() =>
      db.execProtocolRawStream(messages, {
        onRawData: (data) => {
          tracker.push(data);
          // The data is a view into PGlite's memory, reused by the next call: copy it.
          if (answer && !this.#closed) this.#socket.write(Buffer.from(data));
        },
      }),
    );
    return tracker.idle;
  }

  /** Leaves the session as if this connection had never been there. */
  async #cleanup(): Promise<void> {
    try {
      const lock = this.#server.lock;
      const db = this.#server.db;
      if (db && (lock.holds(this) || this.#statements.size > 0)) {
        await lock.acquire(this);
        // An unfinished extended query is ended by a Sync; an open transaction rolled back.
        await this.#execute(syncMessage(), false);
        if (db.isInTransaction()) await this.#execute(queryMessage('ROLLBACK'), false);
        if (this.#statements.size > 0) {
          const closes = [...this.#statements].map(closeStatement);
          await this.#execute(Buffer.concat([...closes, syncMessage()]), false);
        }
      }
    } catch (error) {
      this.#server.reportError(error);
    } finally {
      this.#server.lock.release(this);
      this.#cleaned = true;
      this.#resolveDone();
    }
  }
}

class WireServerImpl implements WireServer {
  readonly lock: SessionLock;
  db: PGlite | null = null;
  readonly #server: Server;
  readonly #connections = new Set<Connection>();
  #nextId = 1;
  readonly #options: WireServerOptions;
  #closing = false;

  constructor(server: Server, options: WireServerOptions) {
    this.#server = server;
    this.#options = options;
    this.lock = new SessionLock((message) => options.onError?.(message));
    server.on('connection', (socket) => {
      const full = this.#connections.size >= options.maxConnections;
      const connection = new Connection(
        this.#nextId++,
        socket,
        this,
        full ? fatal('53300', 'sorry, too many clients already') : null,
      );
      if (full) return;
      this.#connections.add(connection);
      void connection.done.then(() => this.#connections.delete(connection));
    });
  }

  startupRefusal(): Buffer | null {
    if (this.#closing) return fatal('57P01', 'the database system is shutting down');
    if (!this.db) return fatal('57P03', 'the database system is starting up');
    return null;
  }

  reportError(error: unknown): void {
    this.#options.onError?.(error);
  }

  serve(db: PGlite): void {
    this.db = db;
  }

  async close(): Promise<void> {
    this.#closing = true;
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const connection of this.#connections) connection.terminate();
    await Promise.all([...this.#connections].map((connection) => connection.done));
    await stopped;
  }
}

/** Listens on `options.path` (which must not exist); resolves once it accepts connections. */
export async function listenWire(options: WireServerOptions): Promise<WireServer> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return new WireServerImpl(server, options);
}
