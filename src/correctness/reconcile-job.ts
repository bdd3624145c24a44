import { CancelledFailure, Context } from '@temporalio/activity';
import { advanceReconcileWatermark, confirmReconcileProgress, huntsInSeqRange, huntsSinceWatermark, reconcileHunts, type HuntReconciliation } from '../store/correctness/reconcile';
import type { ActivityDeps } from '../worker/activity-deps';

export interface ReconcileActivityInput {
  runId: string;
  /** Reconcile these hunts; when absent, every hunt with events since the watermark. */
  huntIds?: string[];
  repair: boolean;
  huntsPerTransaction: number;
  settleMs: number;
}

export interface ReconcileSummary {
  runId: string;
  hunts: number;
  playersChecked: number;
  playersDrifted: number;
  treasuresChanged: number;
  repaired: boolean;
  /** Hunts that had any drift, with what drifted. */
  drifted: HuntReconciliation[];
  watermark?: number;
}

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
 * 1 h start-to-close timeout (workflows/reconcile.ts); a big hunt's recomputation takes
 * seconds. The fence's wait is bounded apart: hot-path transactions hold it milliseconds.
 */
const GROUP_STATEMENT_TIMEOUT_MS = 10 * 60_000;
const GROUP_LOCK_TIMEOUT_MS = 30_000;

export function createReconcileActivities(deps: Pick<ActivityDeps, 'pool'>) {
  return {
    async reconcileHunts(input: ReconcileActivityInput): Promise<ReconcileSummary> {
      const context = Context.current();
      const resumed = context.info.heartbeatDetails as ReconcileCheckpoint | undefined;
      let checkpoint: ReconcileCheckpoint;
      let hunts: string[];
      if (input.huntIds) {
        hunts = [...new Set(input.huntIds)].sort();
        checkpoint = resumed ?? { summary: emptySummary(input) };
      } else if (resumed?.toSeq !== undefined) {
        hunts = await huntsInSeqRange(deps.pool, resumed.fromSeq ?? 0, resumed.toSeq);
        checkpoint = resumed;
      } else {
        const scope = await huntsSinceWatermark(deps.pool, input.settleMs);
        hunts = [...new Set(scope.huntIds)].sort();
        checkpoint = { fromSeq: scope.fromSeq, toSeq: scope.toSeq, summary: emptySummary(input) };
      }
      const summary = checkpoint.summary;
      summary.hunts = hunts.length;
      const todo = checkpoint.lastHuntDone === undefined ? hunts : hunts.filter((h) => h > (checkpoint.lastHuntDone as string));
      checkpoint = { ...checkpoint, huntsDone: hunts.length - todo.length };
      // At once, so the scope is fixed for a retry and operators see the job's size.
      context.heartbeat(checkpoint);
      // A transaction over many big hunts can outlast the heartbeat timeout: keep beating while it runs.
      const beat = setInterval(() => context.heartbeat(checkpoint), HEARTBEAT_EVERY_MS);
      try {
        for (let i = 0; i < todo.length; i += input.huntsPerTransaction) {
          // An attempt past its timeout (or cancelled) stops here rather than run on beside its retry.
          if (context.cancellationSignal.aborted) throw new CancelledFailure(`reconcile ${input.runId}: cancelled`);
          const group = todo.slice(i, i + input.huntsPerTransaction);
          const results = await reconcileHunts(deps.pool, group, input.runId, input.repair, {
            statementTimeoutMs: GROUP_STATEMENT_TIMEOUT_MS,
            lockTimeoutMs: GROUP_LOCK_TIMEOUT_MS,
            signal: context.cancellationSignal,
          });
          for (const r of results) {
            summary.playersChecked += r.playersChecked;
            summary.playersDrifted += r.playersDrifted;
            summary.treasuresChanged += r.treasuresChanged;
            if (r.playersDrifted + r.treasuresChanged > 0 && summary.drifted.length < 100) summary.drifted.push(r);
          }
          if (checkpoint.toSeq !== undefined) await confirmReconcileProgress(deps.pool);
          checkpoint = { ...checkpoint, lastHuntDone: group[group.length - 1], huntsDone: hunts.length - todo.length + i + group.length, summary };
          context.heartbeat(checkpoint);
        }
      } finally {
        clearInterval(beat);
      }
      // Every hunt with events up to toSeq is reconciled now; hunts that arrived after the
      // scope was fixed are past toSeq, left for the next run.
      if (checkpoint.toSeq !== undefined) {
        await advanceReconcileWatermark(deps.pool, checkpoint.toSeq);
        summary.watermark = checkpoint.toSeq;
      }
      return summary;
    },
  };
}

function emptySummary(input: ReconcileActivityInput): ReconcileSummary {
  return { runId: input.runId, hunts: 0, playersChecked: 0, playersDrifted: 0, treasuresChanged: 0, repaired: input.repair, drifted: [] };
}
