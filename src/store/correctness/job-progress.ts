/**
 * A job step's progress, committed with the work it describes (job_progress, migration 009):
 * a retry resumes from what really committed, where a heartbeat may be one or more units of
 * work behind (throttled, and lost with its worker). The newest attempt owns a step's row:
 * it claims the row as it starts, and an older attempt still running (a worker frozen, then
 * thawed) fails to save, so the work it meant to save with it rolls back.
 */
import type pg from 'pg';

export interface ProgressKey {
  /** The job run (workflow id and run id): a new run of the same workflow id starts afresh. */
  runId: string;
  step: string;
  /** The activity attempt (1, 2, ...). */
  attempt: number;
}

/** Thrown when a newer attempt of the step has claimed its progress: this attempt must stop. */
export class ProgressSuperseded extends Error {
  constructor(key: ProgressKey, by: number) {
    super(`${key.step} of ${key.runId}: attempt ${key.attempt} was superseded by attempt ${by}; it stops without saving`);
    this.name = 'ProgressSuperseded';
  }
}

/** Takes the step's progress row for this attempt and returns what earlier attempts saved (undefined: nothing yet). */
export async function claimProgress<T>(pool: pg.Pool | pg.PoolClient, key: ProgressKey): Promise<T | undefined> {
  const { rows } = await pool.query<{ state: T | null; attempt: number }>(
    `INSERT INTO job_progress (run_id, step, attempt) VALUES ($1, $2, $3)
     ON CONFLICT (run_id, step) DO UPDATE SET attempt = GREATEST(job_progress.attempt, excluded.attempt), updated_at = now()
     RETURNING state, attempt`,
    [key.runId, key.step, key.attempt],
  );
  const row = rows[0];
  if (row && row.attempt !== key.attempt) throw new ProgressSuperseded(key, row.attempt);
  return row?.state ?? undefined;
}

/** Saves the step's progress in the caller's transaction; throws ProgressSuperseded (rolling it back) if a newer attempt claimed it. */
export async function saveProgress(client: pg.PoolClient | pg.Pool, key: ProgressKey, state: unknown): Promise<void> {
  const saved = await client.query(`UPDATE job_progress SET state = $4, updated_at = now() WHERE run_id = $1 AND step = $2 AND attempt = $3`, [
    key.runId,
    key.step,
    key.attempt,
    JSON.stringify(state),
  ]);
  if (saved.rowCount === 1) return;
  const { rows } = await client.query<{ attempt: number }>('SELECT attempt FROM job_progress WHERE run_id = $1 AND step = $2', [key.runId, key.step]);
  throw new ProgressSuperseded(key, rows[0]?.attempt ?? 0);
}

/**
 * Counts a failure of this attempt in the step's progress (`faults`, beside what it saved):
 * the count of failures since its last saved progress, which the step's next save clears.
 * Returns the new count, or undefined when a newer attempt holds the row.
 */
export async function countFault(pool: pg.Pool, key: ProgressKey): Promise<number | undefined> {
  const { rows } = await pool.query<{ faults: number }>(
    `UPDATE job_progress
        SET state = jsonb_set(coalesce(state, '{}'::jsonb), '{faults}', to_jsonb(coalesce((state->>'faults')::int, 0) + 1)), updated_at = now()
      WHERE run_id = $1 AND step = $2 AND attempt = $3
     RETURNING (state->>'faults')::int AS faults`,
    [key.runId, key.step, key.attempt],
  );
  return rows[0]?.faults;
}
