/**
 * Keeps the batch plane's records of past runs for a while, not for ever. Reconcile writes a
 * row per hunt per run (a 5-minute Schedule over a thousand busy hunts: some 300,000 a day),
 * and the drift, data-quality reports and job progress beside them grow with every run; with
 * nothing deleting them, Postgres's disk fills at a pace nobody watches. The worker deletes
 * the rows older than JOB_RECORDS_KEEP_DAYS, in bounded batches, every hour.
 *
 * Never pruned here: the events (the source of truth), quarantine (records kept for replay),
 * reconcile_failures (open problems) and the watermarks.
 */
import type pg from 'pg';

/**
 * Each table's rows older than `$1` days, chosen by an index on their time (or a small table's
 * scan), `$2` at a time. The cut-off is Postgres's clock, the one that stamped the rows: a
 * worker whose clock ran days ahead deleted records that many days early.
 */
const PRUNED: readonly { table: string; deleteOld: string }[] = [
  {
    table: 'reconcile_runs',
    deleteOld: `DELETE FROM reconcile_runs WHERE (run_id, hunt_id) IN
                  (SELECT run_id, hunt_id FROM reconcile_runs WHERE reconciled_at < now() - make_interval(days => $1) LIMIT $2)`,
  },
  { table: 'reconcile_drift', deleteOld: 'DELETE FROM reconcile_drift WHERE id IN (SELECT id FROM reconcile_drift WHERE recorded_at < now() - make_interval(days => $1) LIMIT $2)' },
  {
    table: 'dq_reports',
    deleteOld: `DELETE FROM dq_reports WHERE (run_id, check_name) IN (SELECT run_id, check_name FROM dq_reports WHERE checked_at < now() - make_interval(days => $1) LIMIT $2)`,
  },
  {
    table: 'job_progress',
    deleteOld: 'DELETE FROM job_progress WHERE (run_id, step) IN (SELECT run_id, step FROM job_progress WHERE updated_at < now() - make_interval(days => $1) LIMIT $2)',
  },
];

/** Rows per DELETE: each is a short transaction, so no lock or WAL burst holds anyone up. */
export const PRUNE_BATCH_ROWS = 10_000;

/**
 * Deletes every job record older than `keepDays`; returns how many rows of each table. An
 * aborted `signal` ends it after the statement running (a first pass over a long backlog
 * takes many): the rest is the next pass's.
 */
export async function pruneJobRecords(pool: pg.Pool, keepDays: number, batchRows = PRUNE_BATCH_ROWS, signal?: AbortSignal): Promise<Record<string, number>> {
  const deleted: Record<string, number> = {};
  for (const { table, deleteOld } of PRUNED) {
    deleted[table] = 0;
    for (;;) {
      if (signal?.aborted) return deleted;
      const n = (await pool.query(deleteOld, [keepDays, batchRows])).rowCount ?? 0;
      deleted[table] += n;
      if (n < batchRows) break;
    }
  }
  return deleted;
}
