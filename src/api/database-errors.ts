/**
 * What a failed read of the API's database says about the database, not the read: an outage,
 * a pool with no free connection. The HTTP routes answer these 503 (a 500 at error level for
 * each request would flood the log of the process ingest runs in), and live streams do not
 * blame them on the hunts they were reading.
 */
import { SqlState, sqlStateOf } from '../store/sql-state';

/** No free connection in the API's pool within API_DB_WAIT_MS (pg-pool's own message). */
const POOL_WAIT = /timeout exceeded when trying to connect/i;

/**
 * Load, not a fault: no free connection in the API's pool within API_DB_WAIT_MS, or a
 * query cancelled by API_STATEMENT_TIMEOUT_MS (SQLSTATE 57014) or the client's query timeout.
 */
export function isOverload(err: unknown): boolean {
  return sqlStateOf(err) === SqlState.queryCanceled || POOL_WAIT.test(messageOf(err)) || /Query read timeout/i.test(messageOf(err));
}

/** Socket errors when connecting or while connected. */
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
/** Postgres shutting down or starting (57P01-57P03), out of connections (53300). */
const UNAVAILABLE_STATES = new Set<string>([SqlState.adminShutdown, SqlState.crashShutdown, SqlState.cannotConnectNow, SqlState.tooManyConnections]);

/**
 * An outage, not a fault of the request or the code: Postgres refused or lost the connection,
 * or is shutting down, starting or full (SQLSTATE class 08 too).
 */
export function isDatabaseUnreachable(err: unknown): boolean {
  const state = sqlStateOf(err);
  if (state) return UNAVAILABLE_STATES.has(state) || state.startsWith('08');
  return NETWORK_ERRORS.has((err as { code?: string } | null)?.code ?? '') || /Connection terminated/i.test(messageOf(err));
}

/**
 * Every read would fail the same way now, whatever it reads: the database is unreachable or
 * the pool has no free connection. A statement cancelled by a timeout is not: a hunt's own
 * read can take too long.
 */
export function failsEveryRead(err: unknown): boolean {
  return isDatabaseUnreachable(err) || POOL_WAIT.test(messageOf(err));
}

function messageOf(err: unknown): string {
  return (err as Error | null)?.message ?? '';
}
