/**
 * Reconciliation figures the read API's /metrics shows from Postgres: the reconcile job's
 * runs only, not data quality's checks, which reconcile too (migration 021). Each query reads a
 * bounded number of rows whatever the tables hold: a time window over an index, the newest
 * run by index. They run on a timer (src/api/store-metrics.ts), never per scrape; the
 * quarantine backlog beside them is read by src/store/read/quarantine-backlog.ts.
 */
import type pg from 'pg';

/** What reconciliation finds drifted: players, treasure winners and clue credits (reconcile_drift's kinds). */
export const DRIFT_KINDS = ['player', 'treasure', 'credit'] as const;
export type DriftCounts = Record<(typeof DRIFT_KINDS)[number], number>;

const RECONCILE_ROWS = `job = 'reconcile'`;
const NO_DRIFT: DriftCounts = { player: 0, treasure: 0, credit: 0 };
const SUMS = `coalesce(sum(players_drifted), 0)::int AS player, coalesce(sum(treasures_changed), 0)::int AS treasure,
              coalesce(sum(credits_drifted), 0)::int AS credit`;

/** Drift reconciliation found in runs of the last `windowHours`, by kind. */
export async function recentDrift(pool: pg.Pool, windowHours: number): Promise<DriftCounts> {
  const { rows } = await pool.query<DriftCounts>({
    name: 'monitoring-recent-drift',
    // reconcile_runs_job_time bounds this to the window's runs; reconcile_drift is never scanned.
    text: `SELECT ${SUMS} FROM reconcile_runs WHERE ${RECONCILE_ROWS} AND reconciled_at > now() - make_interval(hours => $1)`,
    values: [windowHours],
  });
  return rows[0] ?? NO_DRIFT;
}

/** Drift found by the most recent reconcile run, by kind. */
export async function lastRunDrift(pool: pg.Pool): Promise<DriftCounts> {
  const { rows } = await pool.query<DriftCounts>({
    name: 'monitoring-last-run-drift',
    text: `SELECT ${SUMS} FROM reconcile_runs
            WHERE ${RECONCILE_ROWS} AND run_id = (SELECT run_id FROM reconcile_runs WHERE ${RECONCILE_ROWS} ORDER BY reconciled_at DESC LIMIT 1)`,
  });
  return rows[0] ?? NO_DRIFT;
}

/**
 * Reconcile runs of the last `windowMinutes` that found drift, by kind: a steady rate of
 * drift keeps this up, where a 24-hour sum of drift stays flat once its window is full
 * (each run adds what the run a day before drops) and an alert on its growth falls silent.
 */
export async function driftedRuns(pool: pg.Pool, windowMinutes: number): Promise<DriftCounts> {
  const { rows } = await pool.query<DriftCounts>({
    name: 'monitoring-drifted-runs',
    text: `SELECT count(DISTINCT run_id) FILTER (WHERE players_drifted > 0)::int AS player,
                  count(DISTINCT run_id) FILTER (WHERE treasures_changed > 0)::int AS treasure,
                  count(DISTINCT run_id) FILTER (WHERE credits_drifted > 0)::int AS credit
             FROM reconcile_runs WHERE ${RECONCILE_ROWS} AND reconciled_at > now() - make_interval(mins => $1)`,
    values: [windowMinutes],
  });
  return rows[0] ?? NO_DRIFT;
}
