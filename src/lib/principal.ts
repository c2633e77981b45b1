import type { Schemas } from '../api-types.js';

/**
 * The authenticated caller, as the services see it: set from a verified access token and
 * the current state of its account and session (read on every request), never from the
 * token's claims alone.
 */
export interface Principal {
  readonly userId: string;
  /** The account's role now, not when the token was issued. */
  readonly role: Schemas['Role'];
  /** The session the access token belongs to, live at the time of the request. */
  readonly sessionId: string;
  /** The account as it was read with the session for this request (getMe answers it). */
  readonly account: Schemas['User'];
}
