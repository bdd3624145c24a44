/** The Postgres connection pool, created from configuration. */
import os from 'node:os';
import pg from 'pg';
import { pgClientConfig, type PostgresTarget } from './pg-connection';
import { SqlState, sqlStateOf } from './sql-state';

// bigint columns (counts, offsets, seq) arrive as strings by default; they stay well inside
// Number's safe range here, so parse them as numbers once for every query.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export type PoolOptions = Pick<
  pg.PoolConfig,
  'statement_timeout' | 'query_timeout' | 'connectionTimeoutMillis' | 'application_name' | 'fallback_application_name' | 'idle_in_transaction_session_timeout' | 'pipeline'
>;

/**
 * How long a session of `hunt ingest` or `hunt worker` may sit idle inside a transaction
 * before Postgres ends it (idle_in_transaction_session_timeout), freeing its locks. A process
 * frozen (SIGSTOP, a VM paused, a debugger) or cut off from the network mid-transaction
 * leaves its session "idle in transaction" holding row locks on hunts or the reprocess fence,
 * and the hot path commits nothing behind them until the session ends: for ever, for a
 * frozen process, since neither the client's timeouts nor TCP keep-alive can act there.
 * Their transactions go from one statement to the next without waiting on anything slower
 * than the client's own JS, so 20 s does not end a healthy one, and it is below the stall
 * limit (INGEST_STALL_LIMIT_MS, 30 s) at which /readyz turns red. Two wait on purpose: a
 * hot-path commit that copies refused records to the DLQ (ending it only retries the commit,
 * the copies not sent again), and a reprocess fill chunk waiting for its other lanes, which
 * lifts the bound for itself (allowIdleInTransaction).
 */
export const IDLE_IN_TRANSACTION_LIMIT_MS = 20_000;

/**
 * What names this process's sessions in pg_stat_activity and in the messages that name a
 * session holding a lock (describeSessions): the program, its host and OS pid, so an
 * operator can find the frozen process, not only its session. A fallback name: an
 * `application_name` the operator put in DATABASE_URL wins.
 */
export function processApplicationName(program: string): string {
  // Postgres keeps 63 bytes of ASCII; the program and pid come first so they survive a long host name.
  return `${program} pid ${process.pid} on ${os.hostname()}`.replace(/[^\x20-\x7e]/g, '?').slice(0, 63);
}

/**
 * A pg client whose server goes away (restart, failover, `pg_ctl stop`) emits 'error';
 * unhandled, that kills the process. The pool listens only while a client is idle, so a
 * client checked out for a transaction, even between two of its queries, would crash us.
 * Every client therefore gets a listener for its whole life: the failed query (if any)
 * rejects on its own and the caller retries, the pool drops the broken client, and the
 * next checkout connects anew, so the error only needs reporting.
 */
export function createPool(
  target: PostgresTarget,
  max = 10,
  onConnectionLost: (err: Error) => void = () => undefined,
  options: PoolOptions = {},
): pg.Pool {
  const pool = new pg.Pool({ ...pgClientConfig(target), ...options, max });
  pool.on('error', onConnectionLost);
  pool.on('connect', (client) => {
    client.on('error', onConnectionLost);
  });
  return pool;
}

/** One round trip to Postgres: resolves when it answers, rejects with why it cannot. */
export async function pingPostgres(db: pg.Pool | pg.ClientBase): Promise<void> {
  await db.query('SELECT 1');
}

/**
 * What a failed ping says, for readiness: the kinds that call for different fixes, never the
 * server's own text (it can name the role or the database). Anything else is `unreachable`.
 */
export function pingFailure(err: unknown): string {
  const code = sqlStateOf(err);
  if (code === SqlState.tooManyConnections) return 'out of connections (53300: max_connections or the role\'s CONNECTION LIMIT reached)';
  if (code === SqlState.cannotConnectNow) return 'starting up or shutting down (57P03)';
  if (code === SqlState.invalidPassword || code === SqlState.invalidAuthorization) return `authentication refused (${code})`;
  if (code === SqlState.invalidCatalogName) return 'the database does not exist (3D000)';
  return 'unreachable';
}

/**
 * The database's encoding, when it is not UTF8, or undefined. Events, names and reject
 * details are Unicode text: in a LATIN1 database a character it cannot hold (the `…` a
 * shortened detail ends with) made a quarantine row fail with 22P05 on every attempt, and
 * the hot path retried the micro-batch for ever.
 */
export async function nonUtf8Encoding(db: pg.Pool | pg.ClientBase): Promise<string | undefined> {
  const { rows } = await db.query<{ server_encoding: string }>('SHOW server_encoding');
  const encoding = rows[0]?.server_encoding;
  return encoding === 'UTF8' ? undefined : encoding;
}

export const UTF8_REQUIRED = "Treasure Hunt Engine needs a UTF8 database (events are Unicode text): create it with ENCODING 'UTF8' and point DATABASE_URL at it";

