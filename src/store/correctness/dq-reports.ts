/** dq_reports: a dataQuality run's report, one row per check. */
import type pg from 'pg';

export type Severity = 'info' | 'warning' | 'error';

export interface CheckReport {
  check: string;
  severity: Severity;
  count: number;
  samples: unknown[];
  /** What the repair changed; absent when the check has no repair or none was asked. */
  repaired?: Record<string, unknown>;
}

/** A run's report row for a check; a new run under the same run id writes over it. */
export async function storeReport(client: pg.PoolClient, runId: string, report: CheckReport): Promise<void> {
  await client.query(
    `INSERT INTO dq_reports (run_id, check_name, severity, finding_count, samples, repaired)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (run_id, check_name) DO UPDATE SET severity = excluded.severity, finding_count = excluded.finding_count,
       samples = excluded.samples, repaired = excluded.repaired, checked_at = now()`,
    [runId, report.check, report.severity, report.count, JSON.stringify(report.samples), report.repaired ? JSON.stringify(report.repaired) : null],
  );
}

export interface StoredCheck {
  run_id: string;
  check_name: string;
  severity: Severity;
  finding_count: number;
  repaired: Record<string, unknown> | null;
  checked_at: Date;
}

/** The stored report of run `runId`, or of the latest run (`runId` null), one row per check. */
export async function storedReport(pool: pg.Pool, runId: string | null): Promise<StoredCheck[]> {
  const { rows } = await pool.query<StoredCheck>(
    `SELECT run_id, check_name, severity, finding_count, repaired, checked_at FROM dq_reports
      WHERE run_id = coalesce($1, (SELECT run_id FROM dq_reports ORDER BY checked_at DESC LIMIT 1))
      ORDER BY check_name`,
    [runId],
  );
  return rows;
}

export interface LatestFindings {
  /** Per check, its latest report's findings that are still there: none once a repair fixed them, its failures when it could not. */
  checks: { check: string; severity: Severity; count: number }[];
  /** Seconds since a run last stored a check. */
  ageSeconds: number;
}

/**
 * Each of `checks`' latest report, for the metrics: per check, not per run, so a run still going
 * (its checks stored one by one) leaves the others' last results standing. A report whose
 * repair ran counts what the repair could not fix (`huntsFailed`), not what it found. Before
 * any run, no checks, and the age counts from the database's set-up (as the scheduled jobs'
 * watermark ages do): a nightly Schedule that never ran shows as late as one that stopped.
 */
export async function latestFindings(pool: pg.Pool, checks: readonly string[]): Promise<LatestFindings> {
  const { rows } = await pool.query<{ check_name: string; severity: Severity; remaining: number; age_seconds: number }>(
    `SELECT DISTINCT ON (check_name) check_name, severity,
            CASE WHEN repaired IS NULL THEN finding_count ELSE coalesce((repaired->>'huntsFailed')::int, 0) END AS remaining,
            extract(epoch FROM now() - checked_at)::float8 AS age_seconds
       FROM dq_reports WHERE check_name = ANY ($1::text[]) ORDER BY check_name, checked_at DESC`,
    [checks],
  );
  if (rows.length > 0) {
    return { checks: rows.map((r) => ({ check: r.check_name, severity: r.severity, count: r.remaining })), ageSeconds: Math.min(...rows.map((r) => r.age_seconds)) };
  }
  const { rows: setUp } = await pool.query<{ age_seconds: number }>('SELECT extract(epoch FROM now() - min(applied_at))::float8 AS age_seconds FROM schema_migrations');
  return { checks: [], ageSeconds: setUp[0]?.age_seconds ?? 0 };
}
