/**
 * A failed read of the API's database that is load, not a fault: the HTTP routes answer it
 * 503 (a 500 at error level for each request would flood the log of the process ingest runs
 * in). An outage is store/outage.ts's.
 */
import { isConnectWait } from '../store/outage';
import { SqlState, sqlStateOf } from '../store/sql-state';

/**
 * Load, not a fault: no free connection in the API's pool within API_DB_WAIT_MS, or a
 * query cancelled by API_STATEMENT_TIMEOUT_MS (SQLSTATE 57014) or the client's query timeout.
 */
export function isOverload(err: unknown): boolean {
  return sqlStateOf(err) === SqlState.queryCanceled || isConnectWait(err) || /Query read timeout/i.test(messageOf(err));
}

function messageOf(err: unknown): string {
  return (err as Error | null)?.message ?? '';
}
