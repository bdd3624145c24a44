import { CancelledFailure, Context } from '@temporalio/activity';
import {
  advanceReconcileWatermark,
  confirmReconcileProgress,
  openSeqRangeScope,
  EVENTS_PER_TRANSACTION,
  hasDrift,
  reconcileRecordingFailures,
  reconcileRunTotals,
  seqRangeSinceWatermark,
  sizesOf,
  type FailedHunt,
  type HuntReconciliation,
  type HuntScope,
  unknownHunts,
} from '../store/correctness/reconcile';
import { groupsOf, type SizedHunt } from '../store/hunt-groups';
import type { ActivityDeps } from '../worker/activity-deps';

export interface ReconcileActivityInput {
  runId: string;
  /** Reconcile these hunts; when absent, every hunt with events since the watermark. */
  huntIds?: string[];
  repair: boolean;
  huntsPerTransaction: number;
  /**
   * A group is also cut before its hunts' stored events pass this; a bigger hunt is a group
   * of its own. Default EVENTS_PER_TRANSACTION.
   */
  eventsPerTransaction?: number;
  /** Hunts read from Postgres at a time. Default HUNTS_PER_PAGE. */
  huntsPerPage?: number;
  settleMs: number;
}

export interface ReconcileSummary {
  runId: string;
  hunts: number;
  playersChecked: number;
  playersDrifted: number;
  treasuresChanged: number;
  /** Clue credits that differed: a credit can differ where no player total does. Absent from an older worker's summary. */
  creditsDrifted?: number;
  repaired: boolean;
  /** Hunts that had any drift, with what drifted. */
  drifted: HuntReconciliation[];
  /** Hunts whose reconciliation failed for what they hold: recorded, passed, and tried again by later runs. */
  huntsFailed: number;
  /** The first of them, with the database's words (all are in reconcile_failures). */
  failed: FailedHunt[];
  /** Where a repairing run scoped by the watermark moved it (a run that only checks leaves it). */
  watermark?: number;
  /** Of the hunts asked for by id, those the store has never seen (no event, no live row): a mistyped id, most likely. Absent from an older worker's summary. */
  unknownHunts?: string[];
}

export type { FailedHunt };

/**
 * What a retry resumes from. The scope (the seq range) is fixed by the first attempt, so a
 * retry reconciles the same hunts whatever arrived meanwhile; progress is the last hunt done
 * in sorted order, not an index, so nothing shifts under it.
 */
export interface ReconcileCheckpoint {
  fromSeq?: number;
  toSeq?: number;
  lastHuntDone?: string;
  /** Hunts reconciled so far, of summary.hunts: progress for operators (`hunt reconcile --wait`). */
  huntsDone?: number;
  summary: ReconcileSummary;
}

const HEARTBEAT_EVERY_MS = 5000;

/**
 * A group's statements, under the hunts' fence. The keep-alive heartbeat hides a stuck
 * statement from the 60 s heartbeat timeout, so this bounds it, well inside the step's
 * 1 h start-to-close timeout (workflows/reconcile.ts). The fence's wait is bounded apart:
 * hot-path transactions hold it milliseconds.
 */
const GROUP_STATEMENT_TIMEOUT_MS = 10 * 60_000;
const GROUP_LOCK_TIMEOUT_MS = 30_000;

export { EVENTS_PER_TRANSACTION };
export const HUNTS_PER_PAGE = 1000;
/** Drifted hunts listed in the summary (all are in reconcile_runs). */
const DRIFTED_LISTED = 100;
/** Failed hunts listed in the summary (all are in reconcile_failures). */
const FAILED_LISTED = 100;
/** Unknown hunts listed in the summary. */
const UNKNOWN_LISTED = 100;

export function createReconcileActivities(deps: Pick<ActivityDeps, 'pool'>) {
  return {
    async reconcileHunts(input: ReconcileActivityInput): Promise<ReconcileSummary> {
      const context = Context.current();
      const resumed = context.info.heartbeatDetails as ReconcileCheckpoint | undefined;
      let checkpoint: ReconcileCheckpoint = (input.huntIds || resumed?.toSeq !== undefined ? resumed : undefined) ?? { summary: emptySummary(input) };
      // Choosing the range (a scan of every event past the watermark: the first run on a
      // big store), reading its hunts and a transaction over big hunts can each outlast the
      // heartbeat timeout: keep beating while they run. A beat without a range yet makes a
      // retry choose it again.
      const beat = setInterval(() => context.heartbeat(checkpoint), HEARTBEAT_EVERY_MS);
      // Only a repairing run has put right what it covered: a run that only checks reads the
      // range from the watermark but neither moves nor confirms it, or the next repairing
      // run would start past the drift it found (and a stuck repair would look alive).
      const ownsWatermark = () => checkpoint.toSeq !== undefined && input.repair;
      let scope: HuntScope | undefined;
      const bounds = { statementTimeoutMs: GROUP_STATEMENT_TIMEOUT_MS, lockTimeoutMs: GROUP_LOCK_TIMEOUT_MS, signal: context.cancellationSignal };
      let huntsDone = 0;
      /** After each transaction that ended (committed, or its hunt failed and passed): the progress, checkpointed. */
      const finished = async (huntIds: readonly string[], results: readonly HuntReconciliation[], failed: readonly FailedHunt[]) => {
        for (const f of failed) context.log.warn('reconcile: a hunt failed for what it holds; recorded in reconcile_failures and passed, later runs try it again', { ...f });
        if (ownsWatermark()) await confirmReconcileProgress(deps.pool);
        huntsDone += huntIds.length;
        // A new checkpoint, never one changed in place: the SDK serializes a heartbeat when
        // it sends it, later, so a checkpoint changed after it was handed over would pair
        // an old cursor with newer counts, and a retry would count those hunts twice.
        checkpoint = { ...checkpoint, lastHuntDone: huntIds[huntIds.length - 1], huntsDone, summary: withResults(checkpoint.summary, results, failed) };
        context.heartbeat(checkpoint);
      };
      try {
        if (!input.huntIds && checkpoint.toSeq === undefined) checkpoint = { ...(await seqRangeSinceWatermark(deps.pool, input.settleMs)), summary: emptySummary(input) };
        scope = input.huntIds ? listScope(deps.pool, input.huntIds) : await openSeqRangeScope(deps.pool, checkpoint.fromSeq ?? 0, checkpoint.toSeq ?? 0, input.runId);
        const lastHuntDone = checkpoint.lastHuntDone;
        huntsDone = lastHuntDone === undefined ? 0 : await scope.countUpTo(lastHuntDone);
        checkpoint = { ...checkpoint, huntsDone, summary: { ...checkpoint.summary, hunts: scope.total } };
        // At once, so the scope is fixed for a retry and operators see the job's size.
        context.heartbeat(checkpoint);
        const hunts = pagesOf(scope, lastHuntDone ?? '', input.huntsPerPage ?? HUNTS_PER_PAGE);
        for await (const group of groupsOf(hunts, input.huntsPerTransaction, input.eventsPerTransaction ?? EVENTS_PER_TRANSACTION)) {
          // An attempt past its timeout (or cancelled) stops here rather than run on beside its retry.
          if (context.cancellationSignal.aborted) throw new CancelledFailure(`reconcile ${input.runId}: cancelled`);
          await reconcileRecordingFailures(deps.pool, group.map((h) => h.huntId), input.runId, input.repair, bounds, finished);
        }
      } finally {
        clearInterval(beat);
        await scope?.close();
      }
      // Every hunt with events up to toSeq is reconciled now; hunts that arrived after the
      // scope was fixed are past toSeq, left for the next run.
      if (ownsWatermark()) await advanceReconcileWatermark(deps.pool, checkpoint.toSeq as number);
      // The totals are what the run committed (one reconcile_runs row per hunt, whatever
      // attempts it took), not the heartbeat's sums. The list of drifted hunts stays the
      // checkpoint's (the worker reads hunts a page at a time): a snapshot, it pairs with its
      // cursor, and a redone group reports the drift recorded before.
      const recorded = await reconcileRunTotals(deps.pool, input.runId);
      const unknown = input.huntIds ? await unknownHunts(deps.pool, [...new Set(input.huntIds)]) : [];
      if (unknown.length > 0) context.log.warn('reconcile: hunts asked for that the store has never seen (no event, no live row); checked nothing for them. A mistyped id?', { unknownHunts: unknown.slice(0, 10) });
      return { ...checkpoint.summary, ...recorded, ...(ownsWatermark() && { watermark: checkpoint.toSeq }), ...(input.huntIds && { unknownHunts: unknown.slice(0, UNKNOWN_LISTED) }) };
    },
  };
}

/** Hunts given in the job's input (bounded by the input itself), sized page by page. */
function listScope(pool: ActivityDeps['pool'], huntIds: readonly string[]): HuntScope {
  const hunts = [...new Set(huntIds)].sort();
  return {
    total: hunts.length,
    countUpTo: async (huntId) => hunts.filter((h) => h <= huntId).length,
    page: (after, limit) => sizesOf(pool, hunts.filter((h) => h > after).slice(0, limit)),
    close: async () => undefined,
  };
}

/** The scope's hunts after `after`, one page held at a time. */
async function* pagesOf(scope: HuntScope, after: string, pageSize: number): AsyncGenerator<SizedHunt> {
  for (let cursor = after; ; ) {
    const page = await scope.page(cursor, pageSize);
    yield* page;
    const last = page[page.length - 1];
    if (page.length < pageSize || !last) return;
    cursor = last.huntId;
  }
}

/** The summary with a group's results added, as a new object (heartbeats hold the old one). */
function withResults(summary: ReconcileSummary, results: readonly HuntReconciliation[], failed: readonly FailedHunt[]): ReconcileSummary {
  const drifted = results.filter(hasDrift);
  return {
    ...summary,
    playersChecked: summary.playersChecked + results.reduce((n, r) => n + r.playersChecked, 0),
    playersDrifted: summary.playersDrifted + results.reduce((n, r) => n + r.playersDrifted, 0),
    treasuresChanged: summary.treasuresChanged + results.reduce((n, r) => n + r.treasuresChanged, 0),
    creditsDrifted: (summary.creditsDrifted ?? 0) + results.reduce((n, r) => n + r.creditsDrifted, 0),
    drifted: [...summary.drifted, ...drifted].slice(0, DRIFTED_LISTED),
    huntsFailed: (summary.huntsFailed ?? 0) + failed.length,
    failed: [...(summary.failed ?? []), ...failed].slice(0, FAILED_LISTED),
  };
}

function emptySummary(input: ReconcileActivityInput): ReconcileSummary {
  return { runId: input.runId, hunts: 0, playersChecked: 0, playersDrifted: 0, treasuresChanged: 0, creditsDrifted: 0, repaired: input.repair, drifted: [], huntsFailed: 0, failed: [] };
}
