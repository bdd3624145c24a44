/**
 * Whether a hot-path statement goes by its name. pg prepares a named statement once per
 * connection and from then on sends only its parameters (Bind, no Parse). While a big Bind
 * crosses a slow link, Postgres shows the session idle, waiting for its client, as it would
 * behind a connection that died: the silent-connection watch (store/silent-sessions.ts) could
 * not tell them apart, and would cut a healthy connection. Sent with its Parse, a statement
 * shows active from its first bytes. So statements carrying big parameters (the staged
 * micro-batch, a big quarantine insert, a fence lock of very many hunts) go unnamed, parsed
 * and planned again each time, which is nothing beside 64 KiB of parameters; small ones keep
 * their name and plan.
 */
export const NAMED_PARAMETERS_MAX_CHARS = 64 * 1024;

/** `{ name }` when the parameters (`chars` characters or bytes of them) are small, else nothing. */
export function nameIfSmall(name: string, chars: number): { name?: string } {
  return chars <= NAMED_PARAMETERS_MAX_CHARS ? { name } : {};
}
