import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * PostgreSQL refuses to run as root (a superuser's SQL could otherwise run anything as
 * root). A server started as root (containers, CI) runs the database as another user:
 * the one that owns an existing data folder, else `postgres` where it exists, else
 * `nobody`. The folder is given to that user; the API itself still connects as root
 * (whom the socket's permissions do not stop).
 */
export interface ServerUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** null: this process is not root, and PostgreSQL runs as this process's user. */
export async function serverUser(pgdata: string): Promise<ServerUser | null> {
  if (process.getuid?.() !== 0) return null;
  const accounts = await readAccounts();
  const existing = await stat(pgdata).catch(() => null);
  if (existing && existing.uid !== 0) {
    const account = accounts.find((candidate) => candidate.uid === existing.uid);
    return account ?? { name: `uid ${existing.uid}`, uid: existing.uid, gid: existing.gid };
  }
  const chosen =
    accounts.find((account) => account.name === 'postgres') ??
    accounts.find((account) => account.name === 'nobody');
  if (!chosen) {
    throw new Error(
      'PostgreSQL cannot run as root, and this system has neither a postgres nor a nobody user to run the embedded database as: run the server as a normal user, or set DATABASE_URL.',
    );
  }
  return chosen;
}

async function readAccounts(): Promise<ServerUser[]> {
  const passwd = await readFile('/etc/passwd', 'utf8').catch(() => '');
  return passwd.split('\n').flatMap((line) => {
    const [name, , uid, gid] = line.split(':');
    if (!name || uid === undefined || gid === undefined) return [];
    return [{ name, uid: Number(uid), gid: Number(gid) }];
  });
}

/**
 * The first folder on the way to `path` that `user` may not enter, or null. PostgreSQL
 * would otherwise fail with "Permission denied" on a path the user never sees.
 */
export async function unreachableBy(user: ServerUser, path: string): Promise<string | null> {
  const folders: string[] = [];
  for (let folder = resolve(path); ; folder = dirname(folder)) {
    folders.unshift(folder);
    if (dirname(folder) === folder) break;
  }
  for (const folder of folders) {
    const info = await stat(folder).catch(() => null);
    if (!info) return null; // made later, by this process, for the user
    const bits =
      info.uid === user.uid ? info.mode >> 6 : info.gid === user.gid ? info.mode >> 3 : info.mode;
    if ((bits & 0o1) === 0) return folder;
  }
  return null;
}
