/**
 * Runs `task` every `everyMs` (the first time after one period) until the returned function
 * is called. A failure goes to `onError`, unless it comes after the stop (a database closed
 * under a task in flight is the end of the app, not a fault). The timer never keeps the
 * process alive.
 */
export function every(
  everyMs: number,
  task: () => Promise<unknown>,
  onError: (error: unknown) => void,
): () => void {
  let stopped = false;
  const timer = setInterval(() => {
    task().catch((error: unknown) => {
      if (!stopped) onError(error);
    });
  }, everyMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
