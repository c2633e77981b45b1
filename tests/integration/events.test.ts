import { sql } from 'drizzle-orm';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { components } from '../../generated/api.js';
import { createWebhookPayloadCheck, WebhookPayloadError } from '../../src/http/webhook-payloads.js';
import { createPasswordHasher } from '../../src/lib/passwords.js';
import { createEventsRepository } from '../../src/modules/events/repository.js';
import { ensureAdminAccount } from '../../src/modules/users/admin-account.js';
import { createUsersRepository } from '../../src/modules/users/repository.js';
import { loadSpec } from '../../src/spec.js';
import { signUpAndLogin, useTestApp } from '../helpers/app.js';
import { postCalls } from '../helpers/posts.js';
import { unique } from '../helpers/values.js';

type Post = components['schemas']['Post'];
type User = components['schemas']['User'];
type Headers = Record<string, string>;

interface RecordedEvent {
  id: string;
  type: string;
  subjectId: string;
  occurredAt: string;
  payload: Record<string, unknown>;
}

const t = useTestApp();
const { createPost, getPost, deletePost } = postCalls(t);
// Independent of the app's own check: every recorded payload is checked again here.
const checkPayload = createWebhookPayloadCheck(loadSpec());

function updatePost(id: string, body: Record<string, unknown>, headers: Headers = {}) {
  return t.inject({
    method: 'PATCH',
    url: `/api/posts/${id}`,
    headers: { ...headers, 'content-type': 'application/merge-patch+json' },
    payload: JSON.stringify(body),
  });
}

const publishPost = (id: string, headers: Headers = {}) =>
  t.inject({ method: 'POST', url: `/api/posts/${id}/publish`, headers });
const unpublishPost = (id: string, headers: Headers = {}) =>
  t.inject({ method: 'POST', url: `/api/posts/${id}/unpublish`, headers });
const deleteUser = (id: string, headers: Headers) =>
  t.inject({ method: 'DELETE', url: `/api/users/${id}`, headers });

/** The position of the last event so far: what a test's actions record comes after it. */
async function mark(): Promise<number> {
  const [row] = await t.db.sql(sql`select coalesce(max(position), 0)::int as last from events`);
  return row!.last as number;
}

/**
 * The events recorded after `since`, in order, each checked against the spec's webhook of
 * its type (as its receivers will get it).
 */
async function eventsSince(since: number): Promise<RecordedEvent[]> {
  const rows = await t.db.sql(sql`
    select id, type, subject_id as "subjectId", payload,
      to_char(occurred_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "occurredAt"
    from events where position > ${since} order by position`);
  const events = rows as unknown as RecordedEvent[];
  for (const event of events) {
    expect(() =>
      checkPayload(event.type, {
        type: event.type,
        timestamp: event.occurredAt,
        data: event.payload,
      }),
    ).not.toThrow();
  }
  return events;
}

/** Runs `action` and answers the events it recorded. */
async function eventsOf(action: () => Promise<unknown>): Promise<RecordedEvent[]> {
  const since = await mark();
  await action();
  return eventsSince(since);
}

async function draftOf(auth: Headers): Promise<Post> {
  const res = await createPost({ title: `Post ${unique()}`, content: 'Draft words.' }, auth);
  expect(res.statusCode, res.body).toBe(201);
  return res.json<Post>();
}

async function publishedOf(auth: Headers): Promise<Post> {
  const draft = await draftOf(auth);
  const res = await publishPost(draft.id, auth);
  expect(res.statusCode, res.body).toBe(200);
  return res.json<Post>();
}

describe('accounts', () => {
  it('records user.created at a sign-up: the account as an admin reads it', async () => {
    let created: User | undefined;
    const events = await eventsOf(async () => {
      const res = await t.inject({
        method: 'POST',
        url: '/api/users',
        payload: {
          email: `${unique()}@example.com`,
          username: unique(),
          password: 'a long password',
        },
      });
      expect(res.statusCode, res.body).toBe(201);
      created = res.json<User>();
    });
    expect(events).toMatchObject([{ type: 'user.created', subjectId: created!.id }]);
    expect(events[0]!.payload).toEqual(created);
    expect(events[0]!.occurredAt).toBe(created!.createdAt);
    expect(JSON.stringify(events[0]!.payload)).not.toMatch(/password|\$2[aby]\$/i);
  });

  it('records none for a sign-up refused as a conflict', async () => {
    const { user } = await signUpAndLogin(t);
    const events = await eventsOf(async () => {
      const res = await t.inject({
        method: 'POST',
        url: '/api/users',
        payload: { email: user.email, username: unique(), password: 'a long password' },
      });
      expect(res.statusCode, res.body).toBe(409);
    });
    expect(events).toEqual([]);
  });

  it('records user.created for the ADMIN_EMAIL account the server makes', async () => {
    const passwords = createPasswordHasher({ cost: 4, threads: 1 });
    onTestFinished(() => passwords.close());
    const users = createUsersRepository(
      t.db.database.db,
      createEventsRepository({ check: checkPayload }),
    );
    const email = `${unique('admin')}@example.com`;
    let made: User | undefined;
    const events = await eventsOf(async () => {
      const result = await ensureAdminAccount(
        { users, passwords },
        { email, password: 'x'.repeat(12) },
      );
      expect(result.action).toBe('created');
      made = result.user;
    });
    expect(events).toMatchObject([{ type: 'user.created', subjectId: made!.id }]);
    expect(events[0]!.payload).toEqual(made);
    expect(made!.role).toBe('admin');
  });

  it('records user.deleted, and post.deleted for each published post the account takes with it', async () => {
    const author = await signUpAndLogin(t);
    const published = await publishedOf(author.auth);
    const draft = await draftOf(author.auth);
    const events = await eventsOf(async () => {
      const res = await deleteUser(author.user.id, author.auth);
      expect(res.statusCode, res.body).toBe(200);
    });
    expect(events.map((event) => [event.type, event.subjectId])).toEqual([
      ['post.deleted', published.id],
      ['user.deleted', author.user.id],
    ]);
    const [postDeleted, userDeleted] = events;
    expect(userDeleted!.payload).toEqual({
      id: author.user.id,
      deletedAt: userDeleted!.occurredAt,
    });
    expect(postDeleted!.payload).toEqual({
      id: published.id,
      slug: published.slug,
      authorId: author.user.id,
      deletedAt: userDeleted!.occurredAt,
    });
    // The draft went too, and nobody was told of it.
    expect(JSON.stringify(events)).not.toContain(draft.id);
    const left = await t.db.sql(sql`select id from posts where author_id = ${author.user.id}`);
    expect(left).toEqual([]);
  });

  it('records none when the deletion is refused (the last active admin)', async () => {
    const admin = await signUpAndLogin(t);
    await t.db.sql(sql`update users set role = 'user' where role = 'admin'`);
    await t.db.sql(sql`update users set role = 'admin' where id = ${admin.user.id}`);
    await publishedOf(admin.auth);
    const events = await eventsOf(async () => {
      const res = await deleteUser(admin.user.id, admin.auth);
      expect(res.statusCode, res.body).toBe(409);
    });
    expect(events).toEqual([]);
  });
});

describe('drafts', () => {
  it('records nothing for a draft made, changed and deleted', async () => {
    const { auth } = await signUpAndLogin(t);
    const events = await eventsOf(async () => {
      const draft = await draftOf(auth);
      const updated = await updatePost(
        draft.id,
        { title: 'Still a draft', content: 'Secret.' },
        auth,
      );
      expect(updated.statusCode, updated.body).toBe(200);
      expect((await deletePost(draft.id, auth)).statusCode).toBe(204);
    });
    expect(events).toEqual([]);
  });
});

describe('published posts', () => {
  it('records post.published with the post as the API shows it, once', async () => {
    const { auth } = await signUpAndLogin(t);
    const draft = await draftOf(auth);
    let post: Post | undefined;
    const events = await eventsOf(async () => {
      const res = await publishPost(draft.id, auth);
      expect(res.statusCode, res.body).toBe(200);
      post = res.json<Post>();
      // Published already: left as it is, and not told again.
      expect((await publishPost(draft.id, auth)).statusCode).toBe(200);
    });
    expect(events).toMatchObject([{ type: 'post.published', subjectId: draft.id }]);
    expect(events[0]!.payload).toEqual(post);
    expect(events[0]!.occurredAt).toBe(post!.publishedAt);
  });

  it('records post.updated with the post as the API now shows it', async () => {
    const { auth } = await signUpAndLogin(t);
    const post = await publishedOf(auth);
    const events = await eventsOf(async () => {
      const res = await updatePost(post.id, { title: 'A new title', content: 'New words.' }, auth);
      expect(res.statusCode, res.body).toBe(200);
    });
    const now = await getPost(post.id);
    expect(now.statusCode).toBe(200);
    expect(events).toMatchObject([{ type: 'post.updated', subjectId: post.id }]);
    expect(events[0]!.payload).toEqual(now.json<Post>());
    expect(events[0]!.payload).toMatchObject({ title: 'A new title', content: 'New words.' });
  });

  it('records none for a change refused: a taken slug (409), a stale If-Match (412)', async () => {
    const { auth } = await signUpAndLogin(t);
    const post = await publishedOf(auth);
    const other = await publishedOf(auth);
    const events = await eventsOf(async () => {
      const taken = await updatePost(post.id, { slug: other.slug }, auth);
      expect(taken.statusCode, taken.body).toBe(409);
      const stale = { ...auth, 'if-match': '"1-0000000000000000"' };
      expect((await updatePost(post.id, { title: 'Late' }, stale)).statusCode).toBe(412);
      expect((await unpublishPost(post.id, stale)).statusCode).toBe(412);
      expect((await deletePost(post.id, stale)).statusCode).toBe(412);
    });
    expect(events).toEqual([]);
  });

  it('records post.unpublished with what was public only, and nothing for the draft it is then', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const post = await publishedOf(auth);
    let unpublished: Post | undefined;
    const events = await eventsOf(async () => {
      const res = await unpublishPost(post.id, auth);
      expect(res.statusCode, res.body).toBe(200);
      unpublished = res.json<Post>();
      const edit = await updatePost(post.id, { content: 'Private again.' }, auth);
      expect(edit.statusCode, edit.body).toBe(200);
    });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'post.unpublished', subjectId: post.id });
    expect(events[0]!.payload).toEqual({
      id: post.id,
      slug: post.slug,
      authorId: user.id,
      unpublishedAt: unpublished!.updatedAt,
    });
  });

  it('records post.deleted with the id, slug, author and time only', async () => {
    const { user, auth } = await signUpAndLogin(t);
    const post = await publishedOf(auth);
    const events = await eventsOf(async () => {
      expect((await deletePost(post.id, auth)).statusCode).toBe(204);
    });
    expect(events).toMatchObject([{ type: 'post.deleted', subjectId: post.id }]);
    expect(events[0]!.payload).toEqual({
      id: post.id,
      slug: post.slug,
      authorId: user.id,
      deletedAt: events[0]!.occurredAt,
    });
  });
});

describe('the contract check of payloads', () => {
  it('refuses a payload the spec does not describe, and the change goes with it', async () => {
    const { user } = await signUpAndLogin(t);
    const events = createEventsRepository({ check: checkPayload });
    const since = await mark();
    const recording = t.db.database.db.transaction(async (tx) => {
      await tx.execute(sql`update users set first_name = 'Changed' where id = ${user.id}`);
      // A draft's content where post.deleted allows none.
      await events.record(tx, {
        type: 'post.deleted',
        subjectId: user.id,
        data: {
          id: user.id,
          slug: 'a-post',
          authorId: user.id,
          deletedAt: new Date().toISOString(),
          content: 'Secret.',
        },
      });
    });
    await expect(recording).rejects.toBeInstanceOf(WebhookPayloadError);
    expect(await eventsSince(since)).toEqual([]);
    const [row] = await t.db.sql(sql`select first_name from users where id = ${user.id}`);
    expect(row!.first_name).toBeNull();
  });
});
