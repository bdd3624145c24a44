/**
 * Gauges read from Postgres: what reconciliation found (drift recorded by the batch plane,
 * hunts it could not reconcile), what the latest data-quality run found and when,
 * the quarantine backlog, how far behind the scheduled batch jobs are, and the state of
 * Postgres itself (its notification queue, its oldest open transaction), so dashboards and
 * alerts see them beside the hot path's.
 *
 * A scrape never queries: the values are refreshed on a timer (API_METRICS_REFRESH_MS) by
 * bounded queries (src/store/read/monitoring.ts and quarantine-backlog.ts) on the read API's
 * pool, so scraping /metrics often, or a flood of requests to it, costs Postgres nothing more.
 */
import type pg from 'pg';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log';
import { ROLLUP_JOB } from '../store/batch/rollups';
import { RECONCILE_JOB } from '../store/correctness/reconcile';
import { CHECKS } from '../store/correctness/data-quality';
import { latestFindings } from '../store/correctness/dq-reports';
import { failingHunts } from '../store/correctness/reconcile-failures';
import { DRIFT_KINDS, driftedRuns, lastRunDrift, recentDrift, type DriftCounts } from '../store/read/monitoring';
import { cappedBacklog } from '../store/read/quarantine-backlog';
import { watermarkAges, watermarkLags } from '../store/read/watermark-age';
import { notificationQueueUsage } from '../store/hunt-changes';
import { oldestTransactionSeconds } from '../store/read/oldest-transaction';
import { everyFewSeconds } from './throttle';

/**
 * Counts above this show as this value: a backlog that large needs attention, not precision.
 * Counting a million index entries takes well under a second, every API_METRICS_REFRESH_MS.
 */
export const QUARANTINE_BACKLOG_CAP = 1_000_000;
/**
 * The last hour's count, for an alert at 100: rows that new are not yet all-visible, so each
 * counted costs a heap fetch, during the very flood it counts.
 */
export const QUARANTINE_LAST_HOUR_CAP = 10_000;
const DRIFT_WINDOW_HOURS = 24;
/** The window of runs counted by hunt_reconcile_drifted_runs: six runs of the default 5-minute Schedule. */
const DRIFTED_RUNS_WINDOW_MINUTES = 30;
/** The data-quality checks there are: a check removed or renamed keeps its last report in dq_reports, which no run would ever clear. */
const DATA_QUALITY_CHECKS = CHECKS.map((check) => check.name);
/** The scheduled jobs driven by a watermark row; their names are their workflow types. */
const WATERMARK_JOBS = [ROLLUP_JOB, RECONCILE_JOB];

export interface StoreGauges {
  /** Resolves after the first refresh (or its failure). */
  readonly firstRefresh: Promise<void>;
  stop(): void;
}

export function startStoreGauges(registry: Registry, pool: pg.Pool, refreshMs: number, logger: Logger): StoreGauges {
  const drift = new Gauge({
    name: 'hunt_reconcile_drift_records',
    help: `Players, treasure winners and clue credits reconciliation found drifted in the last ${DRIFT_WINDOW_HOURS} hours, by kind (${DRIFT_KINDS.join(', ')})`,
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const lastRun = new Gauge({
    name: 'hunt_reconcile_last_run_drift',
    help: `Players, treasure winners and clue credits that drifted in the most recent reconcile run, by kind (${DRIFT_KINDS.join(', ')})`,
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const driftedRunsGauge = new Gauge({
    name: 'hunt_reconcile_drifted_runs',
    help: `Reconcile runs of the last ${DRIFTED_RUNS_WINDOW_MINUTES} minutes that found drift, by kind (${DRIFT_KINDS.join(', ')})`,
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const failing = new Gauge({
    name: 'hunt_reconcile_failing_hunts',
    help: 'Hunts whose last reconciliation failed for what they hold (reconcile_failures): passed by their runs, tried again with a backoff',
    registers: [registry],
  });
  const backlog = new Gauge({
    name: 'hunt_quarantine_backlog',
    help: `Quarantined records not yet replayed, by reason (counted up to ${QUARANTINE_BACKLOG_CAP})`,
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  // What HuntQuarantineGrowing watches. Not the backlog's growth: a reason whose backlog
  // reached the cap (a flood of a million rejects, which stay until replayed) read flat from
  // then on, and the alert could never fire for that reason again, whatever came next.
  const lastHour = new Gauge({
    name: 'hunt_quarantine_last_hour',
    help: `Records quarantined in the last hour and not replayed, by reason (counted up to ${QUARANTINE_LAST_HOUR_CAP})`,
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  // Labelled workflow_type, not job: a scraped `job` label would clash with the target's.
  const watermarkAge = new Gauge({
    name: 'hunt_batch_watermark_age_seconds',
    help: 'Seconds since a scheduled batch job (rollupFlush, reconcile) last moved or confirmed its watermark; grows while its runs hang',
    labelNames: ['workflow_type'] as const,
    registers: [registry],
  });
  const watermarkLag = new Gauge({
    name: 'hunt_batch_watermark_lag_seconds',
    help: "Seconds since the oldest event a scheduled batch job's watermark does not cover yet was stored (0: it covers every event); grows while its runs fall behind",
    labelNames: ['workflow_type'] as const,
    registers: [registry],
  });
  const dqFindings = new Gauge({
    name: 'hunt_data_quality_findings',
    help: "Findings of each dataQuality check's latest report still there (a repairing run's count what its repair could not fix), by check and severity",
    labelNames: ['check', 'severity'] as const,
    registers: [registry],
  });
  const dqAge = new Gauge({
    name: 'hunt_data_quality_report_age_seconds',
    help: 'Seconds since the latest dataQuality run stored a check (before any run, since the database was set up); grows while the nightly Schedule does not run',
    registers: [registry],
  });
  const notifyQueue = new Gauge({
    name: 'hunt_store_notify_queue_usage',
    help: "Share (0-1) of Postgres's notification queue in use: a listening session that stops reading fills it, and once full every commit of the hot path fails",
    registers: [registry],
  });
  const oldestTransaction = new Gauge({
    name: 'hunt_store_oldest_transaction_seconds',
    help: 'Seconds the oldest transaction on the database that holds vacuum back (a snapshot or a write; not a READ COMMITTED session idle after reading) has been open (0: none): while it stays open, vacuum keeps every row version it might see, and the rows the hot path replaces on every event pile up dead',
    registers: [registry],
  });
  const refreshed = new Gauge({
    name: 'hunt_store_metrics_refreshed_seconds',
    help: 'Unix time of the last successful refresh of the gauges read from Postgres',
    registers: [registry],
  });
  const warn = everyFewSeconds((count: number, err: unknown, gauges: string[]) => logger.warn({ err, gauges, count }, 'could not refresh the metrics read from Postgres'), 60_000);

  // Each gauge from its own query, set when that query answers: one that timed out (a
  // quarantine count on a table autovacuum has fallen behind on, say) left every gauge frozen
  // at its last value, the watermark ages and drift too. `refreshed` moves only when all did.
  const updates: readonly [string, () => Promise<void>][] = [
    ['hunt_reconcile_drift_records', async () => {
      setByKind(drift, await recentDrift(pool, DRIFT_WINDOW_HOURS));
    }],
    ['hunt_reconcile_last_run_drift', async () => {
      setByKind(lastRun, await lastRunDrift(pool));
    }],
    ['hunt_reconcile_drifted_runs', async () => {
      setByKind(driftedRunsGauge, await driftedRuns(pool, DRIFTED_RUNS_WINDOW_MINUTES));
    }],
    ['hunt_reconcile_failing_hunts', async () => failing.set(await failingHunts(pool))],
    ['hunt_quarantine_backlog', async () => {
      for (const [reason, n] of await cappedBacklog(pool, QUARANTINE_BACKLOG_CAP)) backlog.set({ reason }, n);
    }],
    ['hunt_quarantine_last_hour', async () => {
      for (const [reason, n] of await cappedBacklog(pool, QUARANTINE_LAST_HOUR_CAP, 60)) lastHour.set({ reason }, n);
    }],
    ['hunt_batch_watermark_age_seconds', async () => {
      for (const [job, age] of await watermarkAges(pool, WATERMARK_JOBS)) watermarkAge.set({ workflow_type: job }, age);
    }],
    ['hunt_batch_watermark_lag_seconds', async () => {
      for (const [job, lag] of await watermarkLags(pool, WATERMARK_JOBS)) watermarkLag.set({ workflow_type: job }, lag);
    }],
    ['hunt_store_notify_queue_usage', async () => notifyQueue.set(await notificationQueueUsage(pool))],
    ['hunt_store_oldest_transaction_seconds', async () => oldestTransaction.set(await oldestTransactionSeconds(pool))],
    ['hunt_data_quality_findings', async () => {
      const latest = await latestFindings(pool, DATA_QUALITY_CHECKS);
      dqFindings.reset(); // a check no longer reported keeps no old count
      for (const { check, severity, count } of latest.checks) dqFindings.set({ check, severity }, count);
      dqAge.set(latest.ageSeconds);
    }],
  ];

  let running = false;
  const refresh = async () => {
    if (running) return;
    running = true;
    try {
      // One query at a time: the read API's pool is small (API_DB_POOL_SIZE, 4), and all six at
      // once held every connection of it, each up to API_STATEMENT_TIMEOUT_MS on a slow count,
      // while game clients' reads waited and got 503s.
      const failed: { gauge: string; err: unknown }[] = [];
      for (const [gauge, update] of updates) await update().catch((err: unknown) => failed.push({ gauge, err }));
      if (failed.length === 0) refreshed.set(Date.now() / 1000);
      else warn(failed[0]!.err, failed.map((f) => f.gauge));
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void refresh(), refreshMs);
  timer.unref();
  return { firstRefresh: refresh(), stop: () => clearInterval(timer) };
}

function setByKind(gauge: Gauge<'kind'>, counts: DriftCounts): void {
  for (const kind of DRIFT_KINDS) gauge.set({ kind }, counts[kind]);
}
