/**
 * Activities are built by a factory from their dependencies, so tests can hand in real
 * services without globals. Workflows import only the type of what this returns.
 * One job's steps per file; each step idempotent.
 */
import type { ActivityDeps } from './deps';
import { createHealthActivities } from './health';

export type { ActivityDeps } from './deps';
export type { DependencyReport } from './health';

export function createActivities(deps: ActivityDeps) {
  return {
    ...createHealthActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
