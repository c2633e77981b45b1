/** The authenticated caller, as the services see it (set from a verified access token). */
export interface Principal {
  readonly userId: string;
}
