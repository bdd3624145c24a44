/**
 * Activities are built by a factory from their dependencies, so tests can hand in real
 * services without globals. Workflows import only the type of what this returns.
 * One job's steps per file; each step idempotent.
 */
import type { ActivityDeps } from './activity-deps';
import { createBackfillActivities } from '../batch/backfill-job';
import { createDataQualityActivities } from '../correctness/data-quality-job';
import { createDlqReplayActivities } from '../correctness/dlq-replay-job';
import { createHealthActivities } from './health-check-job';
import { createReconcileActivities } from '../correctness/reconcile-job';
import { createReprocessActivities } from '../batch/reprocess-job';
import { createRollupActivities } from '../batch/rollup-job';

export type { ActivityDeps } from './activity-deps';
export type { DependencyReport } from './health-check-job';

export function createActivities(deps: ActivityDeps) {
  return {
    ...createHealthActivities(deps),
    ...createBackfillActivities(deps),
    ...createDlqReplayActivities(deps),
    ...createReconcileActivities(deps),
    ...createDataQualityActivities(deps),
    ...createReprocessActivities(deps),
    ...createRollupActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
