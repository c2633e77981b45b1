/**
 * Runs in the password hasher's worker threads (passwords.ts), so that bcrypt's hundreds of
 * milliseconds of CPU never stall the event loop that answers every other request.
 */
import bcrypt from 'bcryptjs';

export type HashTask =
  | { op: 'hash'; password: string; cost: number }
  | { op: 'compare'; password: string; hash: string };

export default function run(task: HashTask): string | boolean {
  return task.op === 'hash'
    ? bcrypt.hashSync(task.password, task.cost)
    : bcrypt.compareSync(task.password, task.hash);
}
