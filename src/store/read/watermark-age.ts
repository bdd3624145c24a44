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
