/**
 * Data-quality checks over the raw store and the projections. Each check counts findings,
 * keeps a few sample rows, and where it can, repairs (reconciling the hunts concerned, or
 * re-aggregating rollup windows). Every run stores one report row per check.
 */
import type pg from 'pg';
import { HUNTS_PER_TRANSACTION } from '../../constants';
import { reconcileHunts } from './reconcile';
import { repairStaleWindows, staleWindowsSql } from '../batch/rollups';
import { quarantineByReason } from '../read/quarantine-backlog';

export type Severity = 'info' | 'warning' | 'error';

export interface CheckReport {
  check: string;
  severity: Severity;
  count: number;
  samples: unknown[];
  /** What the repair changed; absent when the check has no repair or none was asked. */
  repaired?: Record<string, unknown>;
}

export interface CheckProgress {
  check: string;
  /** Hunts done of `of`, for checks that go hunt by hunt. */
  huntsDone?: number;
  of?: number;
}

interface Check {
  name: string;
  severity: Severity;
  /** Rows of findings (at most SAMPLE_LIMIT are kept) and their total count. */
  /** `runId` names what the check records (drift rows), so a retried run records nothing twice. */
  /** `progress` is called as long checks go (each group of hunts), so the job can heartbeat and see a cancellation. */
  find: (pool: pg.Pool, runId: string, progress: (detail: CheckProgress) => void) => Promise<{ count: number; samples: unknown[]; hunts?: string[] }>;
  repair?: (pool: pg.Pool, found: { hunts?: string[] }, runId: string) => Promise<Record<string, unknown>>;
}

const SAMPLE_LIMIT = 5;

async function countAndSamples(pool: pg.Pool, findingsSql: string): Promise<{ count: number; samples: unknown[] }> {
  const { rows } = await pool.query<{ count: number; samples: unknown[] | null }>(
    `WITH findings AS (${findingsSql})
     SELECT (SELECT count(*)::int FROM findings) AS count,
            (SELECT json_agg(s) FROM (SELECT * FROM findings LIMIT ${SAMPLE_LIMIT}) s) AS samples`,
  );
  return { count: rows[0]?.count ?? 0, samples: rows[0]?.samples ?? [] };
}

const ORPHANS = `SELECT 'player_scores' AS table_name, hunt_id, player_id AS id FROM player_scores p
    WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.hunt_id = p.hunt_id AND e.player_id = p.player_id)
   UNION ALL
   SELECT 'clue_credits', hunt_id, event_id FROM clue_credits c WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = c.event_id)
   UNION ALL
   SELECT 'treasure_winners', hunt_id, event_id FROM treasure_winners w WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = w.event_id)`;

const repairByReconcile: Check['repair'] = async (pool, found, runId) => {
  const hunts = found.hunts ?? [];
  const results = [];
  for (let i = 0; i < hunts.length; i += HUNTS_PER_TRANSACTION) {
    results.push(...(await reconcileHunts(pool, hunts.slice(i, i + HUNTS_PER_TRANSACTION), `${runId}/dq-repair`, true)));
  }
  return {
    huntsReconciled: results.length,
    playersRepaired: results.reduce((n, r) => n + r.playersDrifted, 0),
    treasuresRepaired: results.reduce((n, r) => n + r.treasuresChanged, 0),
  };
};

const STALE_ROLLUP_WINDOWS = `(${staleWindowsSql('minute')}) UNION ALL (${staleWindowsSql('hour')})`;

export const CHECKS: Check[] = [
  {
    name: 'duplicate_semantic_events',
    severity: 'info',
    // Same player, same clue (or treasure), same type, under different eventIds: legal (the
    // rules count the earliest), but a client retrying without reusing its eventId.
    find: (pool) =>
      countAndSamples(
        pool,
        `SELECT hunt_id, player_id, type, coalesce(payload->>'clueId', payload->>'treasureId') AS subject,
                count(*)::int AS events, (array_agg(event_id ORDER BY occurred_at, event_id))[1:3] AS event_ids
           FROM events WHERE type IN ('clue.found', 'hint.used', 'treasure.claimed')
          GROUP BY 1, 2, 3, 4 HAVING count(*) > 1`,
      ),
  },
  {
    name: 'orphan_projection_rows',
    severity: 'error',
    find: async (pool) => {
      const found = await countAndSamples(pool, ORPHANS);
      const { rows } = await pool.query<{ hunt_id: string }>(`SELECT DISTINCT hunt_id FROM (${ORPHANS}) o`);
      return { ...found, hunts: rows.map((r) => r.hunt_id) };
    },
    repair: repairByReconcile,
  },
  {
    name: 'score_drift',
    severity: 'error',
    // Live projections against a recomputation from raw events, every hunt; drift rows are
    // recorded under the run (reconcile_drift) without repairing here.
    find: async (pool, dqRunId, progress) => {
      const { rows } = await pool.query<{ hunt_id: string }>(
        'SELECT hunt_id FROM hunts UNION SELECT DISTINCT hunt_id FROM player_scores',
      );
      const runId = `${dqRunId}/score-drift`;
      const results = [];
      // A few hunts per transaction: each holds those hunts' fence only briefly.
      for (let i = 0; i < rows.length; i += HUNTS_PER_TRANSACTION) {
        results.push(...(await reconcileHunts(pool, rows.slice(i, i + HUNTS_PER_TRANSACTION).map((r) => r.hunt_id), runId, false)));
        progress({ check: 'score_drift', huntsDone: Math.min(rows.length, i + HUNTS_PER_TRANSACTION), of: rows.length });
      }
      const drifted = results.filter((r) => r.playersDrifted + r.treasuresChanged > 0);
      const { rows: samples } = await pool.query(
        `SELECT hunt_id, kind, subject_id, live, final FROM reconcile_drift WHERE run_id = $1 ORDER BY id LIMIT ${SAMPLE_LIMIT}`,
        [runId],
      );
      return {
        count: drifted.reduce((n, r) => n + r.playersDrifted + r.treasuresChanged, 0),
        samples,
        hunts: drifted.map((r) => r.huntId),
      };
    },
    repair: repairByReconcile,
  },
  {
    name: 'future_events',
    severity: 'warning',
    find: (pool) =>
      countAndSamples(
        pool,
        `SELECT event_id, hunt_id, occurred_at, ingested_at FROM events WHERE occurred_at > ingested_at + interval '5 minutes'`,
      ),
  },
  {
    name: 'very_late_events',
    severity: 'warning',
    // Stored more than an hour after they happened: provisional scores were likely wrong
    // until reconciliation.
    find: (pool) =>
      countAndSamples(
        pool,
        `SELECT event_id, hunt_id, type, occurred_at, ingested_at FROM events WHERE ingested_at > occurred_at + interval '1 hour'`,
      ),
  },
  {
    name: 'quarantine_backlog',
    severity: 'warning',
    find: async (pool) => {
      const rows = (await quarantineByReason(pool))
        .filter((r) => r.waiting > 0)
        .map((r) => ({ reason: r.reason, records: r.waiting, oldest: r.oldest }))
        .sort((a, b) => b.records - a.records);
      return { count: rows.reduce((n, r) => n + r.records, 0), samples: rows };
    },
  },
  {
    name: 'rollup_mismatch',
    severity: 'error',
    // Every column of every flushed window, against the aggregate the flush itself writes.
    find: (pool) => countAndSamples(pool, STALE_ROLLUP_WINDOWS),
    repair: async (pool) => ({ windowsReaggregated: (await repairStaleWindows(pool, 'minute')) + (await repairStaleWindows(pool, 'hour')) }),
  },
];

/** Runs every check (repairing where asked and possible) and stores the report. */
export async function runDataQuality(pool: pg.Pool, runId: string, repair: boolean, progress: (detail: CheckProgress) => void = () => undefined): Promise<CheckReport[]> {
  const reports: CheckReport[] = [];
  for (const check of CHECKS) {
    progress({ check: check.name });
    const found = await check.find(pool, runId, progress);
    const report: CheckReport = { check: check.name, severity: check.severity, count: found.count, samples: found.samples };
    if (repair && check.repair && found.count > 0) report.repaired = await check.repair(pool, found, runId);
    reports.push(report);
    await pool.query(
      `INSERT INTO dq_reports (run_id, check_name, severity, finding_count, samples, repaired)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (run_id, check_name) DO UPDATE SET severity = excluded.severity, finding_count = excluded.finding_count,
         samples = excluded.samples, repaired = excluded.repaired, checked_at = now()`,
      [runId, report.check, report.severity, report.count, JSON.stringify(report.samples), report.repaired ? JSON.stringify(report.repaired) : null],
    );
  }
  return reports;
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
