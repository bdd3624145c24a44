import { databaseStatus } from '../store/health-check';
import type { ActivityDeps } from './activity-deps';

export interface DependencyReport {
  postgres: string;
  migrations: number;
}

export function createHealthActivities(deps: Pick<ActivityDeps, 'pool'>) {
  return {
    /** Proves the worker reaches its dependencies: Postgres answers and is migrated. */
    async checkDependencies(): Promise<DependencyReport> {
      const row = await databaseStatus(deps.pool);
      if (!row) throw new Error('Postgres returned no row for the dependency check');
      return { postgres: row.version, migrations: row.migrations };
    },
  };
}
