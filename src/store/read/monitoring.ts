/**
 * Reconciliation figures the read API's /metrics shows from Postgres. Each query reads a
 * bounded number of rows whatever the tables hold: a time window over an index, the newest
 * run by index. They run on a timer (src/api/store-metrics.ts), never per scrape; the
 * quarantine backlog beside them is read by src/store/read/quarantine-backlog.ts.
 */
import type pg from 'pg';

/** Players and treasures reconciliation found drifted in runs of the last `windowHours`. */
export async function recentDrift(pool: pg.Pool, windowHours: number): Promise<{ players: number; treasures: number }> {
  const { rows } = await pool.query<{ players: number; treasures: number }>({
    name: 'monitoring-recent-drift',
    // reconcile_runs_time bounds this to the window's runs; reconcile_drift is never scanned.
    text: `SELECT coalesce(sum(players_drifted), 0)::int AS players, coalesce(sum(treasures_changed), 0)::int AS treasures
             FROM reconcile_runs WHERE reconciled_at > now() - make_interval(hours => $1)`,
    values: [windowHours],
  });
  return rows[0] ?? { players: 0, treasures: 0 };
}

/** Players and treasures that drifted in the most recent reconcile run. */
export async function lastRunDrift(pool: pg.Pool): Promise<{ players: number; treasures: number }> {
  const { rows } = await pool.query<{ players: number; treasures: number }>({
    name: 'monitoring-last-run-drift',
    text: `SELECT coalesce(sum(players_drifted), 0)::int AS players, coalesce(sum(treasures_changed), 0)::int AS treasures
             FROM reconcile_runs WHERE run_id = (SELECT run_id FROM reconcile_runs ORDER BY reconciled_at DESC LIMIT 1)`,
  });
  return rows[0] ?? { players: 0, treasures: 0 };
}

/**
 * Reconcile runs of the last `windowMinutes` that found drift, by kind: a steady rate of
 * drift keeps this up, where a 24-hour sum of drift stays flat once its window is full
 * (each run adds what the run a day before drops) and an alert on its growth falls silent.
 */
export async function driftedRuns(pool: pg.Pool, windowMinutes: number): Promise<{ players: number; treasures: number }> {
  const { rows } = await pool.query<{ players: number; treasures: number }>({
    name: 'monitoring-drifted-runs',
    text: `SELECT count(DISTINCT run_id) FILTER (WHERE players_drifted > 0)::int AS players,
                  count(DISTINCT run_id) FILTER (WHERE treasures_changed > 0)::int AS treasures
             FROM reconcile_runs WHERE reconciled_at > now() - make_interval(mins => $1)`,
    values: [windowMinutes],
  });
  return rows[0] ?? { players: 0, treasures: 0 };
}
