/**
 * What the latest data-quality run found, as metrics, on the real Postgres: the nightly run
 * only reports, and its findings (and whether it ran at all) reached no metric or alert.
 */
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database-fixture';
import { refreshedStoreGauges } from '../helpers/store-gauges';

const db = useTestDatabase();

async function dataQualityMetrics(): Promise<{ findings: Record<string, number>; age: number | undefined }> {
  const metrics = await (await refreshedStoreGauges(db.pool)).getMetricsAsJSON();
  const findings = metrics.find((m) => m.name === 'hunt_data_quality_findings')?.values ?? [];
  const age = metrics.find((m) => m.name === 'hunt_data_quality_report_age_seconds')?.values[0]?.value;
  return { findings: Object.fromEntries(findings.map((v) => [`${v.labels.check}/${v.labels.severity}`, v.value])), age };
}

describe('hunt_data_quality_findings and hunt_data_quality_report_age_seconds', () => {
  it('show no findings before any run, and an age from the database\'s set-up', async () => {
    await db.pool.query(`UPDATE schema_migrations SET applied_at = now() - interval '30 hours'`);
    const before = await dataQualityMetrics();
    expect(before.findings).toEqual({});
    expect(before.age).toBeGreaterThanOrEqual(30 * 3600);
    expect(before.age).toBeLessThan(30 * 3600 + 120);
  });

  it('show each check\'s latest report, less what its repair fixed, and how long ago a run reported', async () => {
    await db.pool.query(
      `INSERT INTO dq_reports (run_id, check_name, severity, finding_count, repaired, checked_at) VALUES
         ('nightly-1', 'rollup_mismatch', 'error', 3, NULL, now() - interval '25 hours'),
         ('nightly-1', 'orphan_projection_rows', 'error', 1, NULL, now() - interval '25 hours'),
         ('nightly-1', 'future_events', 'warning', 2, NULL, now() - interval '25 hours'),
         ('repair-1', 'rollup_mismatch', 'error', 3, '{"windowsReaggregated": 3}', now() - interval '3 hours'),
         ('repair-1', 'score_drift', 'error', 4, '{"huntsReconciled": 3, "huntsFailed": 1}', now() - interval '3 hours'),
         ('nightly-2', 'future_events', 'warning', 4, NULL, now() - interval '2 hours'),
         ('nightly-0', 'a_check_since_removed', 'error', 9, NULL, now() - interval '40 days')`,
    );
    const { findings, age } = await dataQualityMetrics();
    expect(findings).toEqual({
      'rollup_mismatch/error': 0, // found 3, all re-aggregated by the repairing run
      'score_drift/error': 1, // the hunt whose repair failed
      'orphan_projection_rows/error': 1, // no later run checked it: its last report stands
      'future_events/warning': 4,
      // a check no longer run is left out: no run would ever clear it
    });
    expect(age).toBeGreaterThanOrEqual(7200);
    expect(age).toBeLessThan(7200 + 120);
  });
});

describe('hunt_quarantine_last_hour', () => {
  it('counts by reason the records quarantined in the last hour and not replayed, whatever backlog is older', async () => {
    const reject = (reason: string, offset: number, ago: string, replayed = false) =>
      db.pool.query(
        `INSERT INTO quarantine (source_topic, source_partition, source_offset, record_value, reason, detail, quarantined_at, replayed_at)
         VALUES ('last-hour', 0, $1, '\\x7b', $2, 'test', now() - $3::interval, CASE WHEN $4 THEN now() END)`,
        [offset, reason, ago, replayed],
      );
    // An old flood of invalid_json (the backlog's gauge could sit at its cap), then three new ones, one replayed.
    for (let i = 0; i < 5; i++) await reject('invalid_json', i, '2 hours');
    for (let i = 5; i < 8; i++) await reject('invalid_json', i, '5 minutes', i === 7);
    await reject('schema_violation', 8, '59 minutes');
    const metrics = await (await refreshedStoreGauges(db.pool)).getMetricsAsJSON();
    const byReason = (name: string) => Object.fromEntries((metrics.find((m) => m.name === name)?.values ?? []).filter((v) => v.value > 0).map((v) => [v.labels.reason, v.value]));
    expect(byReason('hunt_quarantine_last_hour')).toEqual({ invalid_json: 2, schema_violation: 1 });
    expect(byReason('hunt_quarantine_backlog')).toEqual({ invalid_json: 7, schema_violation: 1 });
  });
});
