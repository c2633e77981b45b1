/** The rejection of `withTimeout` when the work did not settle in time. */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/**
 * Settles as `work` does, or rejects with a TimeoutError saying `message` once `timeoutMs`
 * have passed, whichever comes first. The work itself goes on (nothing here can cancel
 * it); the timer is cleared as soon as either settles, so it never holds the process open
 * nor fires for an answer already given.
 */
export async function withTimeout<T>(
  work: Promise<T>,
  timeoutMs: number,
  message: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(message)), timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
