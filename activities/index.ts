/**
 * Activities are built by a factory from their dependencies, so tests can hand in real
 * services without globals. Workflows import only the type of what this returns.
 */
import type pg from 'pg';

export interface ActivityDeps {
  pool: pg.Pool;
}

export interface DependencyReport {
  postgres: string;
  migrations: number;
}

export function createActivities(deps: ActivityDeps) {
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

export type Activities = ReturnType<typeof createActivities>;
