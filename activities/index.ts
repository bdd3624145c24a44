/**
 * Activities are built by a factory from their dependencies, so tests can hand in real
 * services without globals. Workflows import only the type of what this returns.
 * One job's steps per file; each step idempotent.
 */
import type { ActivityDeps } from './deps';
import { createBackfillActivities } from './backfill';
import { createDataQualityActivities } from './data-quality';
import { createDlqReplayActivities } from './dlq-replay';
import { createHealthActivities } from './health';
import { createReconcileActivities } from './reconcile';
import { createReprocessActivities } from './reprocess';
import { createRollupActivities } from './rollups';

export type { ActivityDeps } from './deps';
export type { DependencyReport } from './health';

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
