/** The reference server's bcrypt thread: bcryptjs, off the event loop (as the API does). */
import bcrypt from 'bcryptjs';

export type HashTask =
  | { op: 'hash'; password: string; cost: number }
  | { op: 'compare'; password: string; hash: string };

export default function run(task: HashTask): string | boolean {
  return task.op === 'hash'
    ? bcrypt.hashSync(task.password, task.cost)
    : bcrypt.compareSync(task.password, task.hash);
}
