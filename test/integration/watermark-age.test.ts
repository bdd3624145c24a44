/**
 * How far behind the scheduled batch jobs are, on the real Postgres: the store gauges read
 * each job's watermark age, and a rollup flush with nothing to flush still counts as a pass,
 * so a quiet system does not look like a hung job and a hung one does.
 */
import type { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { flushRollupChunk, ROLLUP_JOB } from '../../src/store/batch/rollups';
import { RECONCILE_JOB } from '../../src/store/correctness/reconcile';
import { useTestDatabase } from '../helpers/database-fixture';
import { refreshedStoreGauges } from '../helpers/store-gauges';

const db = useTestDatabase();

const refreshedGauges = () => refreshedStoreGauges(db.pool);

async function ages(registry?: Registry): Promise<Record<string, number>> {
  const metric = (await (registry ?? (await refreshedGauges())).getMetricsAsJSON()).find((m) => m.name === 'hunt_batch_watermark_age_seconds');
  return Object.fromEntries((metric?.values ?? []).map((v) => [String(v.labels.workflow_type), v.value]));
}

describe('hunt_batch_watermark_age_seconds', () => {
  it('is shown for both scheduled jobs before either ever ran, counted from the migration', async () => {
    // Before, a job made its row on its first run: Schedules that never ran showed no age,
    // and HuntScheduledJobBehind could not fire.
    const { rows } = await db.pool.query<{ job: string; last_seq: number }>('SELECT job, last_seq::int FROM job_watermarks ORDER BY job');
    expect(rows).toEqual([{ job: RECONCILE_JOB, last_seq: 0 }, { job: ROLLUP_JOB, last_seq: 0 }]);
    expect(Object.keys(await ages()).sort()).toEqual([RECONCILE_JOB, ROLLUP_JOB].sort());
  });

  it('tells how long ago each scheduled job last moved or confirmed its watermark', async () => {
    await db.pool.query(
      `INSERT INTO job_watermarks (job, last_seq, updated_at) VALUES ($1, 7, now() - interval '20 minutes'), ($2, 7, now() - interval '30 seconds')
       ON CONFLICT (job) DO UPDATE SET last_seq = excluded.last_seq, updated_at = excluded.updated_at`,
      [ROLLUP_JOB, RECONCILE_JOB],
    );
    const before = await ages();
    expect(before[ROLLUP_JOB]).toBeGreaterThanOrEqual(1200);
    expect(before[ROLLUP_JOB]).toBeLessThan(1300);
    expect(before[RECONCILE_JOB]).toBeGreaterThanOrEqual(30);
    expect(before[RECONCILE_JOB]).toBeLessThan(120);

    // A run with nothing to flush (no events past the watermark) is a pass: the age restarts.
    expect(await flushRollupChunk(db.pool, 1000, 0)).toBeUndefined();
    expect((await ages())[ROLLUP_JOB]).toBeLessThan(60);
  });

  it("is read even when another gauge's query fails, and only a refresh of all moves hunt_store_metrics_refreshed_seconds", async () => {
    await db.pool.query(`INSERT INTO job_watermarks (job, last_seq, updated_at) VALUES ($1, 7, now() - interval '20 minutes') ON CONFLICT (job) DO UPDATE SET updated_at = excluded.updated_at`, [ROLLUP_JOB]);
    // The quarantine count fails (as a statement timeout would); before, every gauge stayed unset with it.
    await db.pool.query('ALTER TABLE quarantine RENAME TO quarantine_away');
    try {
      const registry = await refreshedGauges();
      expect((await ages(registry))[ROLLUP_JOB]).toBeGreaterThanOrEqual(1200);
      const refreshed = (await registry.getMetricsAsJSON()).find((m) => m.name === 'hunt_store_metrics_refreshed_seconds');
      expect(refreshed?.values).toEqual([{ value: 0, labels: {} }]); // never set: not every gauge answered
    } finally {
      await db.pool.query('ALTER TABLE quarantine_away RENAME TO quarantine');
    }
  });
});

describe('hunt_batch_watermark_lag_seconds', () => {
  it('tells how long ago the oldest event past each watermark was stored, however recently the job confirmed its progress', async () => {
    await db.pool.query('DELETE FROM events');
    const { rows } = await db.pool.query<{ seq: string }>(
      `INSERT INTO events (event_id, hunt_id, player_id, type, occurred_at, payload, source, ingested_at)
       SELECT 'lag-' || i, 'h', 'p', 'player.left', now(), '{}', 'test', now() - make_interval(mins => 40 - i) FROM generate_series(1, 3) AS i
       RETURNING seq`,
    );
    const [first, , last] = rows.map((r) => Number(r.seq));
    // reconcile confirms its progress (updated_at now) with two of the three events not covered; rollupFlush covers all.
    await db.pool.query(
      `UPDATE job_watermarks SET last_seq = CASE job WHEN $1 THEN $3::bigint ELSE $4::bigint END, updated_at = now() WHERE job IN ($1, $2)`,
      [RECONCILE_JOB, ROLLUP_JOB, first, last],
    );
    const registry = await refreshedGauges();
    const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'hunt_batch_watermark_lag_seconds');
    const lags = Object.fromEntries((metric?.values ?? []).map((v) => [String(v.labels.workflow_type), v.value]));
    expect(lags[RECONCILE_JOB]).toBeGreaterThanOrEqual(38 * 60); // the second event, stored 38 minutes ago
    expect(lags[RECONCILE_JOB]).toBeLessThan(39 * 60);
    expect(lags[ROLLUP_JOB]).toBe(0);
    expect((await ages(registry))[RECONCILE_JOB]).toBeLessThan(60);
    await db.pool.query('DELETE FROM events');
  });
});
