/**
 * Which database failures are the data's fault and which are the database's.
 *
 * A failure of the data (a value Postgres refuses, a constraint it breaks) fails the same
 * way on every retry: retrying it forever would stall everything behind it, so the records
 * responsible are isolated and rejected instead. Anything else (a lost connection, a
 * timeout, a read-only or shutting-down server, a deadlock, a full disk) is an outage: it
 * goes away by itself and is retried without end, visibly.
 */
import { SERIAL_CONSTRAINTS } from '../serial-sequences';
import { SqlState, sqlStateOf } from '../sql-state';

/**
 * SQLSTATE classes that a record can cause by its content:
 * 21 cardinality violation, 22 data exception (bad text, out-of-range value, bad JSON),
 * 23 integrity constraint violation (CHECK, NOT NULL, foreign key), 44 WITH CHECK OPTION
 * violation (a view's condition), 54 program limit exceeded (an index row or a jsonb value
 * too large), P0 PL/pgSQL raise (a trigger's RAISE EXCEPTION or ASSERT refusing a row).
 * A trigger that raises for every row (to "pause" ingest, say) quarantines every record
 * (replayable with dlqReplay) rather than stalling the stream: stop `hunt ingest` to pause.
 */
const DATA_ERROR_CLASSES = new Set(['21', '22', '23', '44', '54', 'P0']);

/** True when `err` is a Postgres error caused by the data sent, not by the database's state. */
export function isDataError(err: unknown): boolean {
  const code = sqlStateOf(err);
  return code !== undefined && DATA_ERROR_CLASSES.has(code.slice(0, 2)) && !isNotifyQueueFull(err) && !isSeqCollision(err);
}

/**
 * An insert drew a value a stored row holds (an event's seq, a quarantine row's id): its
 * sequence is behind the stored rows (serial-sequences.ts). No record causes it, and every
 * record would be refused alike.
 */
export function isSeqCollision(err: unknown): boolean {
  const constraint = (err as { constraint?: unknown } | null)?.constraint;
  return sqlStateOf(err) === SqlState.uniqueViolation && typeof constraint === 'string' && SERIAL_CONSTRAINTS.has(constraint);
}

/**
 * The NOTIFY queue is full (54000 at COMMIT): a session listening on the change feed stopped
 * reading (a frozen process whose connection lives on), and Postgres keeps every notification
 * since for it. No record causes it, so isolating records would fail again at COMMIT, every
 * retry: it is an outage, waited out until the session reads or is ended (docs/operators.md).
 */
export function isNotifyQueueFull(err: unknown): boolean {
  // The routine that raises it names it whatever the server's language (lc_messages).
  const e = err as { message?: string; routine?: string } | null;
  return sqlStateOf(err) === SqlState.programLimitExceeded && (e?.routine === 'PreCommit_Notify' || /NOTIFY queue/.test(e?.message ?? ''));
}

/**
 * True when a statement ran out of time: Postgres cancelled it at its statement_timeout
 * (SQLSTATE 57014, also what pg_cancel_backend gives), or ended its session at the
 * transaction_timeout a role or database may set (25P04, Postgres 17 and later; ingest pins
 * only statement_timeout and idle_in_transaction_session_timeout), or the client gave up
 * waiting for its answer (pg's query_timeout). Unlike an outage, a micro-batch that took too
 * long may take too long on every retry: the hot path then commits it in smaller parts
 * (src/ingest/flush.ts).
 */
export function ranOutOfTime(err: unknown): boolean {
  const code = sqlStateOf(err);
  return code === SqlState.queryCanceled || code === SqlState.transactionTimeout || /Query read timeout/.test((err as Error | null)?.message ?? '');
}

/**
 * True when a statement's sorts or hashes spilled past the server's temp_file_limit (SQLSTATE
 * 53400, a superuser's setting a managed service may lower). Like running out of time, the
 * same statement does it again on every retry, and a smaller one may sort in memory. Only
 * temp_file_limit's: 53400 is also what an extension or a managed service may raise for a
 * limit that passes (a worker slot).
 */
export function exceededTempFileLimit(err: unknown): boolean {
  return sqlStateOf(err) === SqlState.configurationLimitExceeded && /temp_file_limit/.test((err as Error | null)?.message ?? '');
}

/** The database's own words about a data error, for a rejection's detail. */
export function describeDataError(err: unknown): string {
  const e = err as { message?: string; code?: string; detail?: string; constraint?: string };
  const parts = [e.message ?? String(err)];
  if (e.constraint) parts.push(`constraint ${e.constraint}`);
  if (e.detail) parts.push(e.detail);
  if (e.code) parts.push(`SQLSTATE ${e.code}`);
  return parts.join('; ');
}
