/**
 * Data-quality checks over the raw store and the projections. Each check counts findings,
 * keeps a few sample rows, and where it can, repairs (reconciling the hunts concerned, or
 * re-aggregating rollup windows). Every run stores one report row per check.
 * The store can be large and hunt ids come from clients: statements run under the caller's
 * bounds, the hunt-by-hunt checks page through hunts by key, and a retried run resumes after
 * the checks (and pages) its last checkpoint says are done.
 */
import type pg from 'pg';
import { HUNTS_PER_TRANSACTION } from '../../constants';
import { FUTURE_TOLERANCE_MS } from '../../events/validate';
import { withBoundedTransaction, type StatementBounds } from '../bounded-transaction';
import { EVENTS_PER_TRANSACTION, driftCount, hasDrift, reconcileRecordingFailures, sizesOf, type FailedHunt, type HuntReconciliation } from './reconcile';
import { groupsOf, type SizedHunt } from '../hunt-groups';
import { failuresNotDue } from './reconcile-failures';
import { repairStaleWindows, staleWindowsSql } from '../batch/rollups';
import { quarantineByReason } from '../read/quarantine-backlog';
import { storeReport, type CheckReport, type Severity } from './dq-reports';

export { storedReport, type StoredCheck } from './dq-reports';

export type { CheckReport, Severity } from './dq-reports';

export interface CheckProgress {
  check: string;
  /** Hunts done of `of`, for checks that go hunt by hunt. */
  huntsDone?: number;
  of?: number;
}

/**
 * Findings counted before their repair, which leaves nothing to find again: saved first, so
 * a retry after the repair committed still counts them (once), and repairs their hunts again
 * (a no-op if done, and reconcile reports the drift recorded under the run either way).
 */
export interface PendingFindings {
  /** The hunts they cover end here (byte order); '' for a whole-table check. */
  upTo: string;
  /** The check's hunts done once they are settled. */
  huntsDone: number;
  /** Hunts to reconcile (a page's at most). */
  hunts: string[];
  count: number;
  samples: unknown[];
}

/** How far a check got: the last hunt done (byte order) and what it found up to there. */
export interface PagedProgress {
  check: string;
  afterHunt: string;
  huntsDone: number;
  count: number;
  samples: unknown[];
  repaired?: ReconcileTally;
  pending?: PendingFindings;
}

/** What a retried run resumes from: the checks finished (their reports) and the page reached in the next one. */
export interface DataQualityCheckpoint {
  finished: CheckReport[];
  partial?: PagedProgress;
  /** What the checks record under (DataQualityOptions.recordsRunId); absent in progress saved before it was kept. */
  recordsRunId?: string;
}

export interface DataQualityOptions {
  /** Hunts per page of the hunt-by-hunt checks: only a page of hunt ids is ever held. */
  huntsPerPage?: number;
  /** Bounds every statement of the checks and cancels the running one with the signal (bounded-transaction.ts). */
  bounds?: StatementBounds;
  resumeFrom?: DataQualityCheckpoint;
  /**
   * Saves what a retry resumes from in the transaction given: with a finished check's report
   * row, after each page of a hunt-by-hunt check, and before a repair (job-progress.ts).
   */
  save?: (client: pg.PoolClient, checkpoint: DataQualityCheckpoint) => Promise<void>;
  /** Called after each save, with what was saved (the job heartbeats it for operators). */
  checkpoint?: (checkpoint: DataQualityCheckpoint) => void;
  /**
   * Names what the checks record (reconcile_runs and drift rows), when not `runId`: one name
   * per run of the job (the workflow's run id with its id), so a run started again under a
   * workflow id reused from the Web UI finds none of the earlier run's drift.
   */
  recordsRunId?: string;
}

type ReconcileTally = Record<'huntsReconciled' | 'playersRepaired' | 'treasuresRepaired', number> & {
  /** Clue credits repaired (absent from a checkpoint an older worker saved). */
  creditsRepaired?: number;
  /** Hunts whose repair the database refused (recorded in reconcile_failures). */
  huntsFailed?: number;
};

interface CheckRun {
  pool: pg.Pool;
  /** Names what the check records (drift rows), so a retried run records nothing twice. */
  runId: string;
  repair: boolean;
  huntsPerPage: number;
  bounds?: StatementBounds;
  /** Where this check's previous attempt got to. */
  resumed?: PagedProgress;
  /** Saves the check's state (after each page or group of hunts, and before a repair): what a retry resumes from. */
  saveState: (state: PagedProgress) => Promise<void>;
  /** Called as long checks go, so the job can heartbeat and see a cancellation. */
  progress: (detail: CheckProgress) => void;
}

type Found = Omit<CheckReport, 'check' | 'severity'>;

interface Check {
  name: string;
  severity: Severity;
  /** Counts the findings, keeps at most SAMPLE_LIMIT samples, and repairs where it can and `repair` is asked. */
  run: (run: CheckRun) => Promise<Found>;
}

const SAMPLE_LIMIT = 5;
/** How far the clocks of a consumer (or worker) and Postgres may differ before future_events counts an event. */
const CLOCK_SKEW_ALLOWED_MS = 60_000;
const HUNTS_PER_PAGE = 1000;

/** One transaction, under the run's statement bounds when it has them. */
function inTransaction<T>(run: CheckRun, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withBoundedTransaction(run.pool, run.bounds, work);
}

/** Counts `findings` and keeps samples (`samples` selects them from `findings`); `hunts` lists their hunts if asked (a page's at most). */
async function countAndSamples(run: CheckRun, findings: string, o: { params?: unknown[]; samples?: string; hunts?: boolean } = {}) {
  const { rows } = await inTransaction(run, (client) =>
    client.query<{ count: number; samples: unknown[] | null; hunts?: string[] | null }>(
      `WITH findings AS (${findings})
       SELECT (SELECT count(*)::int FROM findings) AS count,
              (SELECT json_agg(s) FROM (${o.samples ?? `SELECT * FROM findings LIMIT ${SAMPLE_LIMIT}`}) s) AS samples
              ${o.hunts ? ', (SELECT array_agg(DISTINCT hunt_id) FROM findings) AS hunts' : ''}`,
      o.params,
    ),
  );
  return { count: rows[0]?.count ?? 0, samples: rows[0]?.samples ?? [], hunts: rows[0]?.hunts ?? ([] as string[]) };
}

/**
 * Up to $2 hunts after $1 (byte order) with a row in any of `tables`: one index probe per
 * hunt and table (DISTINCT would read every row), as reprocess pages hunts.
 */
function nextHuntsSql(tables: readonly string[], select: string): string {
  const next = (after: string) => `LEAST(${tables.map((t) => `(SELECT hunt_id FROM ${t} WHERE hunt_id > ${after} ORDER BY hunt_id LIMIT 1)`).join(', ')})`;
  return `WITH RECURSIVE next_hunt(hunt_id, n) AS (
       SELECT ${next('$1::text')}, 1
       UNION ALL
       SELECT ${next('h.hunt_id')}, h.n + 1 FROM next_hunt h WHERE h.hunt_id IS NOT NULL AND h.n < $2
     ) SELECT ${select} FROM next_hunt WHERE hunt_id IS NOT NULL`;
}

async function countHunts(run: CheckRun, tables: readonly string[]): Promise<number> {
  const { rows } = await inTransaction(run, (c) => c.query<{ n: number }>(nextHuntsSql(tables, 'count(*)::int AS n'), ['', 2 ** 31 - 1]));
  return rows[0]?.n ?? 0;
}

/**
 * Pages through the hunts of `tables` from where the check got to; `page` takes each, moves
 * the state on and calls `run.pageDone`. Only a page of hunt ids is ever held.
 */
async function pageHunts(run: CheckRun, check: string, tables: readonly string[], page: (hunts: string[], state: PagedProgress) => Promise<void>): Promise<PagedProgress> {
  const state: PagedProgress = run.resumed ? structuredClone(run.resumed) : { check, afterHunt: '', huntsDone: 0, count: 0, samples: [] };
  if (state.pending) {
    await settleFindings(run, state, state.pending);
    await run.saveState(state);
  }
  for (;;) {
    const { rows } = await inTransaction(run, (c) => c.query<{ hunt_id: string }>(nextHuntsSql(tables, 'hunt_id'), [state.afterHunt, run.huntsPerPage]));
    if (rows.length === 0) return state;
    await page(rows.map((r) => r.hunt_id), state);
  }
}

/**
 * `hunts` (in order) in the groups they are reconciled in: at most HUNTS_PER_TRANSACTION
 * hunts and EVENTS_PER_TRANSACTION events a group (a big hunt alone), and a hunt whose
 * reconciliation failed and whose backoff is not over alone, marked with its failure: it
 * is not recomputed again (a hunt past the statement limit would cost each run its full
 * wait), it is a finding as it stands.
 */
async function reconcileGroups(run: CheckRun, hunts: readonly string[]): Promise<({ hunts: string[] } | { failing: FailedHunt })[]> {
  // A refused repair of this very run is not set aside: after a crash before its progress
  // was saved, the retry checks the hunt again and counts what the first attempt counted.
  const failing = await failuresNotDue(run.pool, hunts, `${run.runId}/dq-repair`);
  const groups: ({ hunts: string[] } | { failing: FailedHunt })[] = [];
  let between: SizedHunt[] = [];
  const groupBetween = async () => {
    for await (const group of groupsOf(between, HUNTS_PER_TRANSACTION, EVENTS_PER_TRANSACTION)) groups.push({ hunts: group.map((h) => h.huntId) });
    between = [];
  };
  for (const hunt of await sizesOf(run.pool, hunts)) {
    const error = failing.get(hunt.huntId);
    if (error === undefined) {
      between.push(hunt);
      continue;
    }
    await groupBetween();
    groups.push({ failing: { huntId: hunt.huntId, error } });
  }
  await groupBetween();
  return groups;
}

/** A sample of a hunt its reconciliation failed for, with the database's words. */
const failedSample = (kind: 'reconcile_failed' | 'repair_failed', f: FailedHunt) => ({ hunt_id: f.huntId, kind, error: f.error });

/**
 * Reconciles `hunts`, repairing, in groups (reconcileGroups). A hunt whose repair the
 * database refuses is recorded in reconcile_failures (reconcileRecordingFailures), counted in
 * the tally and sampled, and passed: one such hunt never fails every run of the job.
 */
async function repairHunts(run: CheckRun, hunts: readonly string[], state: { repaired?: ReconcileTally; samples: unknown[] }): Promise<void> {
  const t = state.repaired ?? { huntsReconciled: 0, playersRepaired: 0, treasuresRepaired: 0, creditsRepaired: 0 };
  state.repaired = t;
  const partDone = async (_: readonly string[], results: readonly HuntReconciliation[], failed: readonly FailedHunt[]) => {
    for (const r of results) {
      t.huntsReconciled += 1;
      t.playersRepaired += r.playersDrifted;
      t.treasuresRepaired += r.treasuresChanged;
      t.creditsRepaired = (t.creditsRepaired ?? 0) + r.creditsDrifted;
    }
    if (failed.length > 0) {
      t.huntsFailed = (t.huntsFailed ?? 0) + failed.length;
      state.samples = [...state.samples, ...failed.map((f) => failedSample('repair_failed', f))].slice(0, SAMPLE_LIMIT);
    }
  };
  for (const group of await reconcileGroups(run, hunts)) {
    if ('failing' in group) await partDone([], [], [group.failing]);
    else await reconcileRecordingFailures(run.pool, group.hunts, `${run.runId}/dq-repair`, true, run.bounds, partDone, 'data-quality');
  }
}

/**
 * Adds findings to the check's state, repairing their hunts when asked: saved as pending
 * before the repair, which would leave a retry nothing to count.
 */
async function settleFindings(run: CheckRun, state: PagedProgress, findings: PendingFindings): Promise<void> {
  if (findings.hunts.length > 0) {
    // Findings resumed from the saved state are saved already: saved again, they would clear
    // the failures counted beside them (countFault), and a repair that fails the same way on
    // every try would never fail the run.
    if (findings !== state.pending) {
      state.pending = findings;
      await run.saveState(state);
    }
    await repairHunts(run, findings.hunts, state);
  }
  state.count += findings.count;
  // Cut again: a refused repair's samples may have filled the list since the page's were read.
  state.samples = [...state.samples, ...findings.samples].slice(0, SAMPLE_LIMIT);
  Object.assign(state, { afterHunt: findings.upTo, huntsDone: findings.huntsDone });
  delete state.pending;
}

/** A paged check's findings as a report's, with what its repairs changed when there were any. */
const pagedFound = (state: PagedProgress, samples = state.samples) => ({ count: state.count, samples, ...(state.repaired && { repaired: { ...state.repaired } }) });

const ORPHAN_TABLES = ['player_scores', 'clue_credits', 'treasure_winners'] as const;
const DRIFT_TABLES = ['hunts', 'player_scores'] as const;

/** Projection rows of the hunts in ($1, $2] that no stored event backs. */
const ORPHANS_IN_RANGE = `SELECT 'player_scores' AS table_name, hunt_id, player_id AS id FROM player_scores p
    WHERE p.hunt_id > $1::text AND p.hunt_id <= $2::text
      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.hunt_id = p.hunt_id AND e.player_id = p.player_id)
   UNION ALL
   SELECT 'clue_credits', hunt_id, event_id FROM clue_credits c
    WHERE c.hunt_id > $1::text AND c.hunt_id <= $2::text AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = c.event_id)
   UNION ALL
   SELECT 'treasure_winners', hunt_id, event_id FROM treasure_winners w
    WHERE w.hunt_id > $1::text AND w.hunt_id <= $2::text AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = w.event_id)`;

/** Same player, same clue (or treasure), same type: only counted per group, never gathered. */
const DUPLICATE_GROUPS = `SELECT hunt_id, player_id, type, coalesce(payload->>'clueId', payload->>'treasureId') AS subject, count(*)::int AS events
    FROM events WHERE type IN ('clue.found', 'hint.used', 'treasure.claimed')
   GROUP BY 1, 2, 3, 4 HAVING count(*) > 1`;

/** The sampled groups' first three eventIds, a LIMIT each. */
const DUPLICATE_SAMPLES = `SELECT g.hunt_id, g.player_id, g.type, g.subject, g.events,
         ARRAY(SELECT e.event_id FROM events e
                WHERE e.hunt_id = g.hunt_id AND e.player_id = g.player_id AND e.type = g.type
                  AND coalesce(e.payload->>'clueId', e.payload->>'treasureId') IS NOT DISTINCT FROM g.subject
                ORDER BY e.occurred_at, e.event_id LIMIT 3) AS event_ids
    FROM (SELECT * FROM findings LIMIT ${SAMPLE_LIMIT}) g`;

const STALE_ROLLUP_WINDOWS = `(${staleWindowsSql('minute')}) UNION ALL (${staleWindowsSql('hour')})`;

export const CHECKS: Check[] = [
  {
    name: 'duplicate_semantic_events',
    severity: 'info',
    // Legal (the rules count the earliest), but a client retrying without reusing its
    // eventId. One client resending a clue millions of times makes a group of millions:
    // an array of a group's eventIds would be built whole (work_mem does not bound it).
    run: (run) => countAndSamples(run, DUPLICATE_GROUPS, { samples: DUPLICATE_SAMPLES }),
  },
  {
    name: 'orphan_projection_rows',
    severity: 'error',
    // A page of hunts at a time; a page's orphan hunts are reconciled as found when repairing.
    run: async (run) =>
      pagedFound(
        await pageHunts(run, 'orphan_projection_rows', ORPHAN_TABLES, async (hunts, state) => {
          const last = hunts[hunts.length - 1] as string;
          const found = await countAndSamples(run, ORPHANS_IN_RANGE, {
            params: [state.afterHunt, last, Math.max(0, SAMPLE_LIMIT - state.samples.length)],
            samples: 'SELECT * FROM findings ORDER BY hunt_id, table_name, id LIMIT $3',
            hunts: true,
          });
          const repairing = run.repair ? found.hunts : [];
          await settleFindings(run, state, { upTo: last, huntsDone: state.huntsDone + hunts.length, hunts: repairing, count: found.count, samples: found.samples });
          run.progress({ check: 'orphan_projection_rows', huntsDone: state.huntsDone });
          await run.saveState(state);
        }),
      ),
  },
  {
    name: 'score_drift',
    severity: 'error',
    // Live projections against a recomputation from raw events, every hunt, a page at a
    // time; drift rows are recorded under the run (reconcile_drift), and the drifted hunts
    // reconciled as found when repairing. A hunt that cannot be recomputed (reconcile_failures)
    // counts as a finding, its error a sample: its results go unchecked.
    run: async (run) => {
      const driftRun = `${run.runId}/score-drift`;
      const of = await countHunts(run, DRIFT_TABLES);
      const state = await pageHunts(run, 'score_drift', DRIFT_TABLES, async (hunts, state) => {
        // After each part of a group (a group, or a hunt split from it that failed): the
        // progress saved, so a retry never redoes a hunt that took a statement limit.
        const partDone = async (huntIds: readonly string[], results: readonly HuntReconciliation[], failed: readonly FailedHunt[]) => {
          const drifted = results.filter(hasDrift);
          state.count += drifted.reduce((n, r) => n + driftCount(r), 0) + failed.length;
          state.samples = [...state.samples, ...failed.map((f) => failedSample('reconcile_failed', f))].slice(0, SAMPLE_LIMIT);
          if (run.repair && drifted.length > 0) await repairHunts(run, drifted.map((r) => r.huntId), state);
          Object.assign(state, { afterHunt: huntIds[huntIds.length - 1], huntsDone: state.huntsDone + huntIds.length });
          run.progress({ check: 'score_drift', huntsDone: state.huntsDone, of });
          // Drift is counted from the rows recorded under the run, so a group redone after a
          // crash before this save counts the same drift, not none and not twice.
          await run.saveState(state);
        };
        for (const group of await reconcileGroups(run, hunts)) {
          if ('failing' in group) await partDone([group.failing.huntId], [], [group.failing]);
          else await reconcileRecordingFailures(run.pool, group.hunts, driftRun, false, run.bounds, partDone, 'data-quality');
        }
      });
      const { rows } = await inTransaction(run, (c) =>
        c.query(`SELECT hunt_id, kind, subject_id, live, final FROM reconcile_drift WHERE run_id = $1 ORDER BY id LIMIT ${SAMPLE_LIMIT}`, [driftRun]),
      );
      return pagedFound(state, [...state.samples, ...rows].slice(0, SAMPLE_LIMIT));
    },
  },
  {
    name: 'future_events',
    severity: 'warning',
    // Past what validation lets in (FUTURE_TOLERANCE_MS by the consumer's clock) by more than
    // the clocks may differ: ingested_at is Postgres's, and a consumer's a second ahead of it
    // made every event accepted at the edge a finding.
    run: (run) =>
      countAndSamples(
        run,
        `SELECT event_id, hunt_id, occurred_at, ingested_at FROM events
          WHERE occurred_at > ingested_at + make_interval(secs => ${(FUTURE_TOLERANCE_MS + CLOCK_SKEW_ALLOWED_MS) / 1000})`,
      ),
  },
  {
    name: 'very_late_events',
    severity: 'warning',
    // Stored more than an hour after they happened: provisional scores were likely wrong
    // until reconciliation.
    run: (run) => countAndSamples(run, `SELECT event_id, hunt_id, type, occurred_at, ingested_at FROM events WHERE ingested_at > occurred_at + interval '1 hour'`),
  },
  {
    name: 'quarantine_backlog',
    severity: 'warning',
    run: async (run) => {
      const rows = (await inTransaction(run, (client) => quarantineByReason(client)))
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
    // The findings are saved before the repair: a retry after it would find none.
    run: async (run) => {
      const saved = run.resumed?.pending;
      const found = saved ?? (await countAndSamples(run, STALE_ROLLUP_WINDOWS));
      const report = { count: found.count, samples: found.samples };
      if (!run.repair || found.count === 0) return report;
      if (!saved) {
        const pending = { upTo: '', huntsDone: 0, hunts: [], count: found.count, samples: found.samples };
        await run.saveState({ check: 'rollup_mismatch', afterHunt: '', huntsDone: 0, count: 0, samples: [], pending });
      }
      // After a crash in the repair, this counts the windows the retry re-aggregates.
      const windowsReaggregated = (await repairStaleWindows(run.pool, 'minute', run.bounds)) + (await repairStaleWindows(run.pool, 'hour', run.bounds));
      return { ...report, repaired: { windowsReaggregated } };
    },
  },
];

/**
 * Runs every check (repairing where asked and possible) and stores the report, check by
 * check: from `options.resumeFrom` on, the checks it finished are not run again.
 */
export async function runDataQuality(
  pool: pg.Pool,
  runId: string,
  repair: boolean,
  progress: (detail: CheckProgress) => void = () => undefined,
  options: DataQualityOptions = {},
): Promise<CheckReport[]> {
  const finished = [...(options.resumeFrom?.finished ?? [])];
  const recordsRunId = options.recordsRunId ?? runId;
  const announce = options.checkpoint ?? (() => undefined);
  const persist = options.save;
  /** A page done, or findings before their repair: saved in a transaction of its own, then announced. */
  const saveAlone = async (next: DataQualityCheckpoint) => {
    if (persist) await withBoundedTransaction(pool, options.bounds, (client) => persist(client, next));
    announce(next);
  };
  for (const check of CHECKS) {
    if (finished.some((r) => r.check === check.name)) continue;
    progress({ check: check.name });
    const partial = options.resumeFrom?.partial;
    const found = await check
      .run({
        pool, runId: recordsRunId, repair, progress, bounds: options.bounds, huntsPerPage: options.huntsPerPage ?? HUNTS_PER_PAGE,
        resumed: partial?.check === check.name ? partial : undefined,
        saveState: (state) => saveAlone({ finished: [...finished], partial: structuredClone(state), recordsRunId }),
      })
      .catch((err: unknown) => {
        // Which check hit a statement timeout or a lost connection (a cancellation passes as it is).
        if (!(err instanceof Error) || err.name === 'CancelledFailure') throw err;
        throw new Error(`dataQuality ${runId}, check ${check.name}: ${err.message}`, { cause: err });
      });
    const report: CheckReport = { check: check.name, severity: check.severity, count: found.count, samples: found.samples };
    if (found.repaired && found.count > 0) report.repaired = found.repaired;
    finished.push(report);
    // The report row and the checkpoint that says the check is finished commit together: a
    // retry never runs it again (a repairing check would find nothing and store 0).
    const next = { finished: [...finished], recordsRunId };
    await withBoundedTransaction(pool, options.bounds, async (client) => {
      await storeReport(client, runId, report);
      await persist?.(client, next);
    });
    announce(next);
  }
  return CHECKS.flatMap((c) => finished.filter((r) => r.check === c.name));
}
