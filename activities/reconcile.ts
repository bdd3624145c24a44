import { Context } from '@temporalio/activity';
import { advanceReconcileWatermark, huntsSinceWatermark, reconcileHunts, type HuntReconciliation } from '../src/store/reconcile';
import type { ActivityDeps } from './deps';

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

export function createReconcileActivities(deps: Pick<ActivityDeps, 'pool'>) {
  return {
    async reconcileHunts(input: ReconcileActivityInput): Promise<ReconcileSummary> {
      const context = Context.current();
      const scope = input.huntIds ? { huntIds: input.huntIds, toSeq: undefined } : await huntsSinceWatermark(deps.pool, input.settleMs);
      const hunts = [...new Set(scope.huntIds)].sort();
      const summary: ReconcileSummary = {
        runId: input.runId,
        hunts: hunts.length,
        playersChecked: 0,
        playersDrifted: 0,
        treasuresChanged: 0,
        repaired: input.repair,
        drifted: [],
      };
      // Resume after a retry: hunts before the heartbeated index are done (and recorded).
      const startAt = (context.info.heartbeatDetails as { next: number } | undefined)?.next ?? 0;
      for (let i = startAt; i < hunts.length; i += input.huntsPerTransaction) {
        const results = await reconcileHunts(deps.pool, hunts.slice(i, i + input.huntsPerTransaction), input.runId, input.repair);
        for (const r of results) {
          summary.playersChecked += r.playersChecked;
          summary.playersDrifted += r.playersDrifted;
          summary.treasuresChanged += r.treasuresChanged;
          if (r.playersDrifted + r.treasuresChanged > 0 && summary.drifted.length < 100) summary.drifted.push(r);
        }
        context.heartbeat({ next: i + input.huntsPerTransaction });
      }
      if (scope.toSeq !== undefined) {
        await advanceReconcileWatermark(deps.pool, scope.toSeq);
        summary.watermark = scope.toSeq;
      }
      return summary;
    },
  };
}
