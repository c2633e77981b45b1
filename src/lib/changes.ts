/**
 * What a committed change altered of what readers see, told by the services that make
 * changes, after their commit and before they return: the response cache drops every
 * answer the change altered before the change's own response is sent, so a client reads
 * its own writes (and so do others). A service never learns what is cached or how.
 */
export type Change =
  /**
   * A post: its id, its slugs before and after (an edit may change the slug), and whether it
   * is or was published (only then are the listings altered).
   */
  | { kind: 'post'; id: string; slugs: readonly string[]; listed: boolean }
  /**
   * An account: its public profile, the listing of users, and (`author`) what posts show of
   * their author, or whether its posts are shown at all (a name, a disabling, a deletion,
   * which deletes its posts too).
   */
  | { kind: 'user'; id: string; author: boolean }
  /**
   * A view of a published post: only its view count changed, which readers may see late
   * (by CACHE_VIEW_COUNT_LAG at most), so nothing it altered is dropped, but answers kept
   * from before it are no longer exact.
   */
  | { kind: 'view'; id: string };

export interface Changes {
  /** Never rejects: a change that could not be told is the receiver's to handle. */
  changed(...changes: Change[]): Promise<void>;
}

/** Where nothing is cached (no REDIS_URL, or CACHE=off): nobody to tell. */
export const noChanges: Changes = { changed: () => Promise.resolve() };
