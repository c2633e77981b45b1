/** An RFC 4122 UUID in its bare textual form (no `urn:uuid:` prefix, no braces), any case. */
export const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
