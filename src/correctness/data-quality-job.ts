import { CancelledFailure, Context } from '@temporalio/activity';
import { runDataQuality, type CheckReport } from '../store/correctness/data-quality';
import type { ActivityDeps } from '../worker/activity-deps';

export function createDataQualityActivities(deps: Pick<ActivityDeps, 'pool'>) {
  return {
    /** Runs every check; re-running a run id overwrites its report rows (idempotent). */
    async runDataQualityChecks(input: { runId: string; repair: boolean }): Promise<CheckReport[]> {
      const context = Context.current();
      // Heartbeats as checks go; an attempt that timed out or was cancelled stops at the next one
      // (it would otherwise run on, repairing, beside the retry).
      return runDataQuality(deps.pool, input.runId, input.repair, (progress) => {
        if (context.cancellationSignal.aborted) throw new CancelledFailure(`dataQuality ${input.runId}: cancelled`);
        context.heartbeat(progress);
      });
    },
  };
}
