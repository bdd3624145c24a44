/**
 * How far behind the scheduled, watermark-driven jobs are: seconds since each last moved or
 * confirmed its watermark (job_watermarks.updated_at). rollupFlush touches its row on every
 * chunk and on a run with nothing to flush; reconcile after every group of hunts a scheduled
 * run commits, and at its end. A run
 * that hangs (its step timed out on the server, retried, or stuck in SQL) stops touching it,
 * while its Schedule skips every later run: the age keeps growing.
 */
import type pg from 'pg';

/** Age in seconds per job, for the jobs that have a watermark row yet. */
export async function watermarkAges(pool: pg.Pool, jobs: readonly string[]): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ job: string; age: number }>({
    name: 'monitoring-watermark-age',
    text: `SELECT job, greatest(0, extract(epoch FROM now() - updated_at))::float8 AS age FROM job_watermarks WHERE job = ANY($1::text[])`,
    values: [jobs],
  });
  return new Map(rows.map((r) => [r.job, r.age]));
}

/**
 * How far behind the stored events each job's results are: seconds since the oldest event
 * past its watermark was stored (0 when it covers every event). The age above cannot say it:
 * a run that works through more than it can cover in its interval (hunts grown large, a
 * backfill) confirms its progress group after group, so its age stays near 0, while the
 * Schedule skips run after run and late claims wait longer and longer for their repair.
 * One probe of events_seq_key per job.
 */
export async function watermarkLags(pool: pg.Pool, jobs: readonly string[]): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ job: string; lag: number }>({
    name: 'monitoring-watermark-lag',
    text: `SELECT w.job, coalesce(greatest(0, extract(epoch FROM now() - (SELECT e.ingested_at FROM events e WHERE e.seq > w.last_seq ORDER BY e.seq LIMIT 1))), 0)::float8 AS lag
             FROM job_watermarks w WHERE w.job = ANY($1::text[])`,
    values: [jobs],
  });
  return new Map(rows.map((r) => [r.job, r.lag]));
}
