import { asc, eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { users } from '../../db/schema/users.js';
import { preparedRows } from '../../db/statements.js';
import { accountColumns, profileColumns } from './rows.js';

/** Named prepared statements for the reads on every request's path (planned once per connection). */
export function preparedReads(db: Db) {
  const one = (name: string, fields: typeof accountColumns, where: ReturnType<typeof eq>) =>
    db.select(fields).from(users).where(where).limit(1).prepare(name);
  const credentials = { ...accountColumns, passwordHash: users.passwordHash };
  const idMatches = eq(users.id, sql.placeholder('id'));
  const emailMatches = eq(sql`lower(${users.email})`, sql`lower(${sql.placeholder('email')})`);
  // A row comparison walks the (created_at, id) index: page 1000 costs what page 1 does.
  const after = sql`(${users.createdAt}, ${users.id}) > (${sql.placeholder('createdAt')}::timestamptz, ${sql.placeholder('id')}::uuid)`;
  const byAge = [asc(users.createdAt), asc(users.id)];
  const limit = sql.placeholder('limit');
  const accountPage = (name: string, start: boolean) =>
    db
      .select(accountColumns)
      .from(users)
      .where(start ? after : undefined)
      .orderBy(...byAge)
      .limit(limit)
      .prepare(name);
  const profilePage = (name: string, start: boolean) =>
    db
      .select(profileColumns)
      .from(users)
      .where(start ? after : undefined)
      .orderBy(...byAge)
      .limit(limit)
      .prepare(name);
  const profile = db.select(profileColumns).from(users).where(idMatches);
  return {
    byId: one('users_by_id', accountColumns, idMatches),
    byEmail: one('users_by_email', accountColumns, emailMatches),
    credentialsById: db
      .select(credentials)
      .from(users)
      .where(idMatches)
      .limit(1)
      .prepare('users_credentials_by_id'),
    credentialsByEmail: db
      .select(credentials)
      .from(users)
      .where(emailMatches)
      .limit(1)
      .prepare('users_credentials_by_email'),
    // getUser, the most frequent read of users: sent without Drizzle's session.
    profileById: preparedRows(db, 'users_profile_by_id', profile, profileColumns),
    accountPages: {
      first: accountPage('users_first_page', false),
      after: accountPage('users_page_after', true),
    },
    profilePages: {
      first: profilePage('users_profiles_first_page', false),
      after: profilePage('users_profiles_page_after', true),
    },
  };
}
