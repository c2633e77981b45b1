import { beforeAll, expect, it } from 'vitest';
import { signUpAndLogin, type TestApp } from '../helpers/app.js';
import { useInstances, type RedisTestApp } from '../helpers/redis.js';

/**
 * The domain events are the cache's second notice: the relay drops what each event
 * changed, on every instance, even when the change's own notice never reached Redis. Here
 * the change is made on an instance that tells the cache nothing (CACHE=false), and the
 * answers are kept for an hour: only the relay (in the reader, JOBS_IN_PROCESS) can drop
 * them.
 */
const env = {
  RATE_LIMIT_AUTH_MAX: '100000',
  CACHE_TTL: '1h',
  CACHE_VIEW_COUNT_LAG: '1h',
  CACHE_NOT_FOUND_TTL: '1h',
};
const deployment = useInstances([
  { ...env, JOBS_IN_PROCESS: 'true' },
  { ...env, CACHE: 'false', JOBS_IN_PROCESS: 'false' },
]);
let reader: RedisTestApp;
let silent: RedisTestApp;
beforeAll(() => {
  [reader, silent] = deployment.instances as [RedisTestApp, RedisTestApp];
});

/** Reads `url` on the reader until `until` holds of the answer, for 10 s at most. */
async function eventually(url: string, until: (status: number, body: string) => boolean) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const answer = await reader.app.inject({ method: 'GET', url });
    if (until(answer.statusCode, answer.body) || Date.now() > deadline) return answer;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

it('drops the answers a relayed event changed, whoever made the change', async () => {
  const signedUp = await signUpAndLogin({
    inject: (options) => silent.app.inject(options),
  } as TestApp);
  const headers = { authorization: `Bearer ${signedUp.token}` };
  const created = await silent.app.inject({
    method: 'POST',
    url: '/api/posts',
    headers,
    payload: { title: 'Told by its event', content: 'Only the relay tells the cache.' },
  });
  const post = created.json<{ id: string; slug: string }>();
  const url = `/api/posts/${post.id}`;
  // Kept: the 404 of a draft (the reader's answer, for an hour).
  expect((await reader.app.inject({ method: 'GET', url })).statusCode).toBe(404);
  const published = await silent.app.inject({
    method: 'POST',
    url: `/api/posts/${post.id}/publish`,
    headers,
  });
  expect(published.statusCode).toBe(200);
  expect((await eventually(url, (status) => status === 200)).statusCode).toBe(200);
  // An edit: its post.updated event drops the kept post and the listing.
  const listing = `/api/users/${signedUp.user.id}/posts`;
  expect((await reader.app.inject({ method: 'GET', url: listing })).body).toContain(
    'Told by its event',
  );
  await silent.app.inject({
    method: 'PATCH',
    url,
    headers,
    payload: { title: 'Edited, and told by its event' },
  });
  const edited = await eventually(url, (_status, body) => body.includes('Edited'));
  expect(edited.json<{ title: string }>().title).toBe('Edited, and told by its event');
  const listed = await eventually(listing, (_status, body) => body.includes('Edited'));
  expect(listed.body).toContain('Edited, and told by its event');
});
