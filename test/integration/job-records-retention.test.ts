/**
 * Past runs' records are deleted once older than JOB_RECORDS_KEEP_DAYS, on the real Postgres:
 * reconcile rows and drift, data-quality reports and job progress, in bounded batches; the
 * newer ones, and what is never pruned (events, quarantine, reconcile_failures), stay.
 */
import { describe, expect, it, vi } from 'vitest';
import { pruneJobRecords } from '../../src/store/correctness/job-records-retention';
import { createLogger } from '../../src/log';
import { startJobRecordsPruner } from '../../src/worker/job-records-pruner';
import { useTestDatabase } from '../helpers/database-fixture';
import { waitFor } from '../helpers/wait';

const db = useTestDatabase();

/** `old` rows dated 40 days ago and `recent` rows dated 20 days ago, in every pruned table. */
async function seed(prefix: string, old: number, recent: number): Promise<void> {
  const ages = [...Array.from({ length: old }, () => 40), ...Array.from({ length: recent }, () => 20)];
  await db.pool.query(
    `INSERT INTO reconcile_runs (run_id, hunt_id, players_checked, players_drifted, treasures_changed, repaired, reconciled_at)
     SELECT $1 || i, 'hunt-1', 1, 0, 0, true, now() - make_interval(days => d) FROM unnest($2::int[]) WITH ORDINALITY AS a(d, i)`,
    [`${prefix}-run-`, ages],
  );
  await db.pool.query(
    `INSERT INTO reconcile_drift (run_id, hunt_id, kind, subject_id, recorded_at)
     SELECT $1 || i, 'hunt-1', 'player', 'p', now() - make_interval(days => d) FROM unnest($2::int[]) WITH ORDINALITY AS a(d, i)`,
    [`${prefix}-run-`, ages],
  );
  await db.pool.query(
    `INSERT INTO dq_reports (run_id, check_name, severity, finding_count, checked_at)
     SELECT $1 || i, 'check', 'info', 0, now() - make_interval(days => d) FROM unnest($2::int[]) WITH ORDINALITY AS a(d, i)`,
    [`${prefix}-run-`, ages],
  );
  await db.pool.query(
    `INSERT INTO job_progress (run_id, step, attempt, updated_at)
     SELECT $1 || i, 'step', 1, now() - make_interval(days => d) FROM unnest($2::int[]) WITH ORDINALITY AS a(d, i)`,
    [`${prefix}-run-`, ages],
  );
  await db.pool.query(`INSERT INTO reconcile_failures (hunt_id, run_id, error, first_failed_at, retry_after) VALUES ($1, 'r', 'e', now() - interval '90 days', now())`, [`${prefix}-hunt`]);
}

const remaining = async (prefix: string) => {
  const count = async (sql: string) => Number((await db.pool.query<{ n: string }>(sql, [`${prefix}-%`])).rows[0]?.n);
  return {
    reconcile_runs: await count('SELECT count(*) AS n FROM reconcile_runs WHERE run_id LIKE $1'),
    reconcile_drift: await count('SELECT count(*) AS n FROM reconcile_drift WHERE run_id LIKE $1'),
    dq_reports: await count('SELECT count(*) AS n FROM dq_reports WHERE run_id LIKE $1'),
    job_progress: await count('SELECT count(*) AS n FROM job_progress WHERE run_id LIKE $1'),
    reconcile_failures: await count('SELECT count(*) AS n FROM reconcile_failures WHERE hunt_id LIKE $1'),
  };
};

describe('job records retention', () => {
  it('deletes the records older than the days kept, batch after batch, and keeps the rest', async () => {
    await seed('a', 7, 2);
    // A stopping worker's pass ends before its next statement.
    expect(await pruneJobRecords(db.pool, 30, 3, AbortSignal.abort())).toEqual({ reconcile_runs: 0 });
    expect((await remaining('a')).reconcile_runs).toBe(9);
    // Batches of 3: 7 old rows take three DELETEs per table, the last one short.
    const deleted = await pruneJobRecords(db.pool, 30, 3);
    expect(deleted).toEqual({ reconcile_runs: 7, reconcile_drift: 7, dq_reports: 7, job_progress: 7 });
    expect(await remaining('a')).toEqual({ reconcile_runs: 2, reconcile_drift: 2, dq_reports: 2, job_progress: 2, reconcile_failures: 1 });
    // Kept 10 days: the 20-day-old rows go too.
    await pruneJobRecords(db.pool, 10);
    expect(await remaining('a')).toEqual({ reconcile_runs: 0, reconcile_drift: 0, dq_reports: 0, job_progress: 0, reconcile_failures: 1 });
  });

  it("cuts off by Postgres's clock, the one that stamped the rows, not the worker's", async () => {
    await seed('c', 0, 3);
    // A worker clock 15 days ahead: the 20-day-old rows would look 35 days old to it.
    const ahead = vi.spyOn(Date, 'now').mockReturnValue(Date.now() + 15 * 86_400_000);
    try {
      expect(await pruneJobRecords(db.pool, 30)).toEqual({ reconcile_runs: 0, reconcile_drift: 0, dq_reports: 0, job_progress: 0 });
    } finally {
      ahead.mockRestore();
    }
    expect(await remaining('c')).toEqual({ reconcile_runs: 3, reconcile_drift: 3, dq_reports: 3, job_progress: 3, reconcile_failures: 1 });
  });

  it("runs in the worker's timer, and a pass that fails is tried again by the next", async () => {
    await seed('b', 4, 1);
    await db.pool.query('ALTER TABLE dq_reports RENAME TO dq_reports_away');
    const pruner = startJobRecordsPruner(db.pool, 30, createLogger({ logLevel: 'silent' }), { firstAfterMs: 0, everyMs: 200 });
    try {
      // The first passes fail at dq_reports (after the tables before it); once it is back, a pass gets through.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const progressRows = async () => Number((await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM job_progress WHERE run_id LIKE 'b-%'`)).rows[0]?.n);
      expect(await progressRows()).toBe(5);
      await db.pool.query('ALTER TABLE dq_reports_away RENAME TO dq_reports');
      await waitFor('a pass to delete the old records', async () => (await progressRows()) === 1, { timeoutMs: 10_000, intervalMs: 100 });
      expect(await remaining('b')).toEqual({ reconcile_runs: 1, reconcile_drift: 1, dq_reports: 1, job_progress: 1, reconcile_failures: 1 });
    } finally {
      await pruner.stop();
    }
  });
});
