import { createHash } from 'node:crypto';

/**
 * Entity tags (RFC 9110 §8.8.3) for resources with a version: `"<version>-<digest>"`.
 * The digest is of the representation, so the tag changes whenever a byte of the body
 * does (a view, an author's new name): a strong validator, good for If-None-Match. The
 * version is the resource's own state, which If-Match compares: a view changes the
 * digest but not the version, so readers never make an editor's change fail.
 */
export function entityTag(version: number, representation: unknown): string {
  const digest = createHash('sha256')
    .update(JSON.stringify(representation))
    .digest('hex')
    .slice(0, 16);
  return `"${version}-${digest}"`;
}

/** The entity tags of an If-Match or If-None-Match value; '*' for any. */
function tagsOf(header: string): '*' | { weak: boolean; tag: string }[] {
  if (header.trim() === '*') return '*';
  const tags: { weak: boolean; tag: string }[] = [];
  for (const match of header.matchAll(/(W\/)?"([^"]*)"/g)) {
    tags.push({ weak: match[1] !== undefined, tag: `"${match[2]}"` });
  }
  return tags;
}

/**
 * If-None-Match: whether the client's copy is the current representation (weak
 * comparison, as RFC 9110 §13.1.2 asks), so that a 304 is the answer.
 */
export function noneMatchHolds(header: string | undefined, current: string): boolean {
  if (header === undefined) return true;
  const tags = tagsOf(header);
  if (tags === '*') return false;
  return !tags.some(({ tag }) => tag === current);
}

/**
 * If-Match, as a condition on the resource's version: undefined when the request has
 * none. `*` holds for any existing version; otherwise one of the strong tags sent must
 * name the current version (weak tags never match, RFC 9110 §13.1.1).
 */
export function versionConditionOf(
  header: string | undefined,
): ((version: number) => boolean) | undefined {
  if (header === undefined) return undefined;
  const tags = tagsOf(header);
  if (tags === '*') return () => true;
  const versions = new Set(
    tags
      .filter(({ weak }) => !weak)
      .map(({ tag }) => /^"(\d+)-[0-9a-f]{16}"$/.exec(tag)?.[1])
      .filter((version): version is string => version !== undefined)
      .map(Number),
  );
  return (version) => versions.has(version);
}

/**
 * The entity tag of a representation without a version of its own (a page, a profile):
 * `"<digest>"`, strong, for If-None-Match only.
 */
export function representationTag(representation: unknown): string {
  const digest = createHash('sha256')
    .update(JSON.stringify(representation))
    .digest('hex')
    .slice(0, 16);
  return `"${digest}"`;
}

/** Who may keep an answer: any cache, or only the caller's own client. */
export type ReadCacheControl = 'public, no-cache' | 'private, no-cache';

/** What showRead needs of a read's handler input (getUser, listUsers, the post listings). */
export interface ShowReadInput<B, E, R> {
  headers: { 'If-None-Match'?: string | undefined };
  // The operation's reply, typed for both statuses at once (see showPost).
  reply(
    status: 200 | 304,
    body: B | undefined,
    headers: { ETag: string; 'Cache-Control': ReadCacheControl },
  ): R;
  refuse(error: E): R;
}

/**
 * A read's answer: 200 with its entity tag and Cache-Control, 304 when If-None-Match holds
 * that tag, or the outcome's error.
 */
export function showRead<B, E, R>(
  // B and E come from the outcome: the input's reply and refuse are checked against them.
  input: ShowReadInput<NoInfer<B>, NoInfer<E>, R>,
  found: { ok: true; value: B } | { ok: false; error: E },
  cacheControl: ReadCacheControl,
): R {
  if (!found.ok) return input.refuse(found.error);
  const headers = { ETag: representationTag(found.value), 'Cache-Control': cacheControl };
  if (!noneMatchHolds(input.headers['If-None-Match'], headers.ETag)) {
    return input.reply(304, undefined, headers);
  }
  return input.reply(200, found.value, headers);
}
