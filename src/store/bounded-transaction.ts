/**
 * A transaction that cannot outlive the job step running it. Temporal decides a step's
 * heartbeat and start-to-close timeouts on the server: the attempt it gives up on keeps its
 * statement running on the worker, holding a pooled connection and its locks, while the
 * retry queues behind those locks; a few such attempts exhaust the worker's pool and every
 * job on the worker waits. So: a lock wait and a statement are bounded by `SET LOCAL`
 * timeouts, and when the step's attempt ends (its cancellation signal: timed out on the
 * server, cancelled, the worker stopping) the running statement is cancelled at once.
 */
import pg from 'pg';
import { withTransaction } from './transaction';

export interface StatementBounds {
  /** statement_timeout of every statement of the transaction: below the step's timeout. */
  statementTimeoutMs: number;
  /** lock_timeout: how long one lock may be waited for; left as it is when absent (the statement limit still bounds a wait). */
  lockTimeoutMs?: number;
  /** The step's cancellation signal (Context.current().cancellationSignal). */
  signal?: AbortSignal;
}

/**
 * The limits of a job step's commit of events (a backfill's part, a DLQ replay's batch),
 * without the step's signal. The step's keep-alive heartbeats hide a stuck statement from
 * the heartbeat timeout, so no one statement runs past 20 minutes, inside the steps'
 * start-to-close (30 minutes, 1 hour) though a step makes many; a hunt's fence another session keeps longer than the lock limit (an open
 * transaction in psql) fails the attempt, which the step retries, instead of holding, for as
 * long as that session lives, the fences taken meanwhile: the hot path's hunts among them.
 */
export const EVENT_COMMIT_LIMITS = { statementTimeoutMs: 20 * 60_000, lockTimeoutMs: 30_000 } as const;

/** A transaction under `bounds`; a plain one when there are none (a caller outside a job step). */
export async function withBoundedTransaction<T>(pool: pg.Pool, bounds: StatementBounds | undefined, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  if (!bounds) return withTransaction(pool, work);
  bounds.signal?.throwIfAborted();
  return withTransaction(pool, async (client) => {
    if (bounds.lockTimeoutMs === undefined) {
      await client.query(`SELECT set_config('statement_timeout', $1, true)`, [`${bounds.statementTimeoutMs}ms`]);
    } else {
      await client.query(`SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true)`, [
        `${bounds.statementTimeoutMs}ms`,
        `${bounds.lockTimeoutMs}ms`,
      ]);
    }
    const canceller = cancelOnAbort(pool, client, bounds.signal);
    try {
      // Aborted while the connection was taken from the pool (up to a minute on a busy one) and
      // the transaction begun, before the listener was there: no statement of the work starts.
      bounds.signal?.throwIfAborted();
      return await work(client);
    } finally {
      // Before the client goes back to the pool: a cancel landing later could hit another job's query.
      await canceller.stop();
    }
  });
}

function cancelOnAbort(pool: pg.Pool, client: pg.PoolClient, signal: AbortSignal | undefined): { stop(): Promise<void> } {
  if (!signal) return { stop: async () => undefined };
  let sent: Promise<void> | undefined;
  const onAbort = () => {
    sent = cancelBackend(pool, (client as unknown as { processID: number }).processID);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  return {
    async stop() {
      signal.removeEventListener('abort', onAbort);
      await sent;
    },
  };
}

/**
 * pg_cancel_backend over a connection of its own, not the pool's: the pool may be exactly
 * what stuck attempts have exhausted. A failure to cancel leaves the statement timeout to end it.
 */
async function cancelBackend(pool: pg.Pool, pid: number): Promise<void> {
  const connection = new pg.Client(pool.options);
  connection.on('error', () => undefined);
  try {
    await connection.connect();
    await connection.query('SELECT pg_cancel_backend($1)', [pid]);
  } catch {
    // The statement timeout still bounds it.
  } finally {
    await connection.end().catch(() => undefined);
  }
}

/**
 * Lifts the pool's idle-in-transaction bound (IDLE_IN_TRANSACTION_LIMIT_MS in pool.ts) to
 * `maxIdleMs` for the rest of this transaction only. For a transaction that waits between
 * its statements on purpose and holds no lock the hot path takes: a reprocess fill chunk's
 * own transaction sits idle while its other lanes recompute their hunts, for as long as the
 * biggest of them takes (a lane with a hunt of 1.5M events more than the first: over 20 s),
 * and ending it would fail the chunk the same way on every retry.
 */
export async function allowIdleInTransaction(client: pg.ClientBase, maxIdleMs: number): Promise<void> {
  await client.query(`SELECT set_config('idle_in_transaction_session_timeout', $1, true)`, [`${maxIdleMs}ms`]);
}
