import { Context } from '@temporalio/activity';
import { runDataQuality, type CheckReport } from '../store/correctness/data-quality';
import type { ActivityDeps } from '../worker/activity-deps';

export function createDataQualityActivities(deps: Pick<ActivityDeps, 'pool'>) {
  return {
    /** Runs every check; re-running a run id overwrites its report rows (idempotent). */
    async runDataQualityChecks(input: { runId: string; repair: boolean }): Promise<CheckReport[]> {
      const context = Context.current();
      return runDataQuality(deps.pool, input.runId, input.repair, (check) => context.heartbeat({ check }));
    },
  };
}
