/**
 * Whether a failed statement says Postgres is out of reach, not that the statement or the
 * code is at fault: what waiting out heals. The read API answers these 503; the data-quality
 * job retries them for as long as they last.
 */
import { SqlState, sqlStateOf } from './sql-state';

/** Socket errors when connecting or while connected. */
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
/** Postgres shutting down or starting (57P01-57P03), out of connections (53300). */
const UNAVAILABLE_STATES = new Set<string>([SqlState.adminShutdown, SqlState.crashShutdown, SqlState.cannotConnectNow, SqlState.tooManyConnections]);

/**
 * An outage: Postgres refused or lost the connection, or is shutting down, starting or full
 * (SQLSTATE class 08 too).
 */
export function isDatabaseUnreachable(err: unknown): boolean {
  const state = sqlStateOf(err);
  if (state) return UNAVAILABLE_STATES.has(state) || state.startsWith('08');
  return NETWORK_ERRORS.has((err as { code?: string } | null)?.code ?? '') || /Connection terminated/i.test((err as Error | null)?.message ?? '');
}

/**
 * No connection within the pool's connectionTimeoutMillis (pg-pool's own words): every one
 * is in use, or Postgres takes connections and does not answer them.
 */
export function isConnectWait(err: unknown): boolean {
  return /timeout exceeded when trying to connect/i.test((err as Error | null)?.message ?? '');
}

/**
 * Every statement would fail the same way now, whatever it reads or writes: Postgres is out of
 * reach, or no connection is to be had. A statement cancelled by a timeout is not: one
 * statement's own work can take too long.
 */
export function failsEveryStatement(err: unknown): boolean {
  return isDatabaseUnreachable(err) || isConnectWait(err);
}

/** Whether `test` holds for the error or for any error it was wrapped around (`cause`). */
export function anyCause(err: unknown, test: (e: Error) => boolean): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    if (test(e)) return true;
  }
  return false;
}
