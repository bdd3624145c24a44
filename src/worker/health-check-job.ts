import type { ActivityDeps } from './activity-deps';

export interface DependencyReport {
  postgres: string;
  migrations: number;
}

export function createHealthActivities(deps: Pick<ActivityDeps, 'pool'>) {
  return {
    /** Proves the worker reaches its dependencies: Postgres answers and is migrated. */
    async checkDependencies(): Promise<DependencyReport> {
      const { rows } = await deps.pool.query<{ version: string; migrations: number }>(
        `SELECT current_setting('server_version') AS version,
                (SELECT count(*)::int FROM schema_migrations) AS migrations`,
      );
      const row = rows[0];
      if (!row) throw new Error('Postgres returned no row for the dependency check');
      return { postgres: row.version, migrations: row.migrations };
    },
  };
}
