/**
 * What a failed read of the API's database says about the database, not the read: an outage,
 * a pool with no free connection. The HTTP routes answer these 503 (a 500 at error level for
 * each request would flood the log of the process ingest runs in), and live streams do not
 * blame them on the hunts they were reading.
 */
import { isConnectWait, isDatabaseUnreachable } from '../store/outage';
import { SqlState, sqlStateOf } from '../store/sql-state';

/**
 * Load, not a fault: no free connection in the API's pool within API_DB_WAIT_MS, or a
 * query cancelled by API_STATEMENT_TIMEOUT_MS (SQLSTATE 57014) or the client's query timeout.
 */
export function isOverload(err: unknown): boolean {
  return sqlStateOf(err) === SqlState.queryCanceled || isConnectWait(err) || /Query read timeout/i.test(messageOf(err));
}

/**
 * Every read would fail the same way now, whatever it reads: the database is unreachable or
 * the pool has no free connection. A statement cancelled by a timeout is not: a hunt's own
 * read can take too long.
 */
export function failsEveryRead(err: unknown): boolean {
  return isDatabaseUnreachable(err) || isConnectWait(err);
}

function messageOf(err: unknown): string {
  return (err as Error | null)?.message ?? '';
}
