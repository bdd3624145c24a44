/**
 * Hunts whose repairing reconciliation fails for what they hold (migration 013): recorded so
 * a run goes on past them, tried again by later runs with a backoff, and cleared by the
 * repairing run that reconciles them. A failure that is the database's state (a lost connection, a deadlock, a
 * lock wait) is not recorded: the step is retried, as for any outage.
 */
import type pg from 'pg';
import { isDataError } from '../hot-path/errors';
import { SqlState, sqlStateOf } from '../sql-state';

/** The first retry's wait; each failure doubles it, up to RETRY_MAX_MINUTES. */
const RETRY_FIRST_MINUTES = 5;
/** A hunt too big for the statement limit costs each try 10 minutes of a run: not more than every 6 hours. */
const RETRY_MAX_MINUTES = 6 * 60;
/** The error text kept per hunt: Postgres's message, detail and constraint are far shorter. */
const ERROR_MAX_CHARS = 2000;

/**
 * True when `err` comes back whatever the database's state, for these hunts: a value or a
 * constraint refused (isDataError's classes), or a limit their size reaches on every try: the
 * step's own statement limit (57014), or temp_file_limit (53400) on a recompute whose sort
 * spills past it. A cancelled step is not a failure of its hunts.
 */
export function isHuntFailure(err: unknown): boolean {
  const code = sqlStateOf(err);
  return isDataError(err) || code === SqlState.queryCanceled || code === SqlState.configurationLimitExceeded;
}

/**
 * Records that `huntId` failed in `runId`, and when it may be tried again. A run that only
 * checks (`repair` false: data quality's nightly drift check, `--no-repair`) records a hunt
 * not yet recorded, and leaves a record alone: the attempts and the backoff are the
 * repairing runs', whose next try a check must not push back.
 */
export async function recordReconcileFailure(pool: pg.Pool, huntId: string, runId: string, error: string, repair: boolean): Promise<void> {
  await pool.query(
    `INSERT INTO reconcile_failures AS f (hunt_id, run_id, error, retry_after)
     VALUES ($1, $2, $3, now() + make_interval(mins => $4))
     ON CONFLICT (hunt_id) DO UPDATE SET run_id = excluded.run_id, error = excluded.error, attempts = f.attempts + 1,
       last_failed_at = now(), retry_after = now() + make_interval(mins => least($5, $4 * 2 ^ least(f.attempts, 10))::int)
     WHERE $6::boolean`,
    [huntId, runId, error.slice(0, ERROR_MAX_CHARS), RETRY_FIRST_MINUTES, RETRY_MAX_MINUTES, repair],
  );
}

/** Forgets the failures of hunts just reconciled (in the transaction that reconciled them). */
export async function clearReconcileFailures(client: pg.ClientBase, huntIds: readonly string[]): Promise<void> {
  await client.query('DELETE FROM reconcile_failures WHERE hunt_id = ANY($1::text[])', [huntIds]);
}

/** How many hunts failed their last reconciliation (the gauge behind HuntReconcileHuntsFailing). */
export async function failingHunts(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>({ name: 'monitoring-reconcile-failures', text: 'SELECT count(*)::int AS n FROM reconcile_failures' });
  return rows[0]?.n ?? 0;
}

/** Of `huntIds`, those whose reconciliation failed and whose backoff is not over, with their errors (but those recorded by `exceptRunId`). */
export async function failuresNotDue(pool: pg.Pool, huntIds: readonly string[], exceptRunId = ''): Promise<Map<string, string>> {
  if (huntIds.length === 0) return new Map();
  const { rows } = await pool.query<{ hunt_id: string; error: string }>(
    'SELECT hunt_id, error FROM reconcile_failures WHERE hunt_id = ANY($1::text[]) AND retry_after > now() AND run_id <> $2',
    [huntIds, exceptRunId],
  );
  return new Map(rows.map((r) => [r.hunt_id, r.error]));
}
