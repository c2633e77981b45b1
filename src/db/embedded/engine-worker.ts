/**
 * A worker thread of the owner process: PGlite and the socket that serves it.
 *
 * On a thread of its own, opening the database (~0.4 s of CPU) runs beside the loading of
 * the app on the main thread, and a long query does not stop the server from answering
 * /health. The app reaches the database through the socket like any other client.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite, type PGliteOptions } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';
import { listenWire, type WireServer } from './wire.js';

export interface EngineSettings {
  dataDir: string;
  socketPath: string;
  maxConnections: number;
  /** The folder is being initialised by another process: wait for 'initdb-done'. */
  initdbPending: boolean;
}

export type ToEngine =
  { type: 'initdb-done' } | { type: 'initdb-failed'; message: string } | { type: 'close' };

export type FromEngine =
  | { type: 'listening' }
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'error'; message: string }
  | { type: 'closed' };

/**
 * PGlite reads the folder only after it has loaded and started its WebAssembly module
 * (about a third of the time it takes to open). Holding that read back until the folder
 * has been initialised elsewhere lets both happen at once.
 */
class GatedNodeFS extends NodeFS {
  readonly #gate: Promise<void>;

  constructor(dataDir: string, gate: Promise<void>) {
    super(dataDir);
    this.#gate = gate;
  }

  override async initialSyncFs(): Promise<void> {
    await this.#gate;
    return super.initialSyncFs();
  }
}

/**
 * An empty WebAssembly module in place of initdb's: this thread must never initialise a
 * folder (another process does, and its memory goes back to the system when it exits),
 * so if PGlite ever tried, it fails instead of running a second initdb on the folder.
 */
const { WebAssembly: wasm } = globalThis as unknown as {
  WebAssembly: {
    Module: new (bytes: Uint8Array) => NonNullable<PGliteOptions['initdbWasmModule']>;
  };
};
const noInitdb = new wasm.Module(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));

/**
 * PostgreSQL's default of 128 MB of shared buffers is most of PGlite's resident memory;
 * 16 MB holds a development database's working set (measured: 300 → 170 MB resident).
 */
const startParams = [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'];

const port = parentPort!;
const settings = workerData as EngineSettings;
const send = (message: FromEngine) => port.postMessage(message);

let initdbResult: { resolve: () => void; reject: (error: Error) => void } | undefined;
const initialised = settings.initdbPending
  ? new Promise<void>((resolve, reject) => (initdbResult = { resolve, reject }))
  : Promise.resolve();
// Awaited by PGlite when it reads the folder; a failure before then is reported as 'failed'.
initialised.catch(() => undefined);

let wire: WireServer | undefined;
let db: PGlite | undefined;
const started = (async () => {
  try {
    wire = await listenWire({
      path: settings.socketPath,
      maxConnections: settings.maxConnections,
      onError: (error) => send({ type: 'error', message: String(error) }),
    });
    send({ type: 'listening' });
    db = await PGlite.create({
      fs: new GatedNodeFS(settings.dataDir, initialised),
      startParams,
      initdbWasmModule: noInitdb,
    });
    wire.serve(db);
    send({ type: 'ready' });
  } catch (error) {
    send({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
  }
})();

port.on('message', (message: ToEngine) => {
  if (message.type === 'initdb-done') initdbResult?.resolve();
  if (message.type === 'initdb-failed') initdbResult?.reject(new Error(message.message));
  if (message.type === 'close') {
    // Asked to stop while still starting (Ctrl-C during a first start): finish starting,
    // or failing, first, so that nothing opened afterwards is left behind.
    void started
      .then(async () => {
        await wire?.close();
        await db?.close();
      })
      .finally(() => {
        send({ type: 'closed' });
        port.close();
      });
  }
});
