import type { FastifyBaseLogger } from 'fastify';
import fp from 'fastify-plugin';

/**
 * Work the app does besides answering requests (the job workers, the email delivery they
 * run, and the events relay; later subscribers). One owner starts it with the app and stops it
 * with the app, so that none of it runs before the app is ready, outlives it, or works on
 * a database that has closed.
 */
export interface BackgroundTask {
  /** For the logs. */
  readonly name: string;
  /**
   * Starts the work; what it returns stops it, and resolves once the work in hand is done
   * (a batch of emails being sent is finished and marked).
   */
  start(log: FastifyBaseLogger): () => void | Promise<void>;
}

export interface BackgroundOptions {
  tasks: readonly BackgroundTask[];
  /**
   * Resolves once the database's schema is current, when the caller migrates it while the
   * app starts (an embedded database): the tasks start then, or never if it fails.
   */
  migrated?: Promise<unknown> | undefined;
}

/**
 * Starts every task once the app is ready (without holding `ready` up) and its database is
 * migrated; stops them, last started first, as soon as the app starts closing: after the
 * graceful close's preClose hook (register this after it), and before the onClose hooks,
 * which close the database.
 */
export const background = fp<BackgroundOptions>(
  async (app, { tasks, migrated }) => {
    const stops: Array<() => void | Promise<void>> = [];
    let closing = false;
    app.addHook('onReady', async () => {
      void Promise.resolve(migrated).then(
        () => {
          if (closing) return;
          for (const task of tasks) stops.push(task.start(app.log));
        },
        () => undefined,
      );
    });
    app.addHook('preClose', async () => {
      closing = true;
      for (const stop of stops.splice(0).reverse()) await stop();
    });
  },
  { name: 'background' },
);
