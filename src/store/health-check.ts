/** What the `healthCheck` workflow asks of Postgres: that it answers, and how far it is migrated. */
import type pg from 'pg';

/** The server's version and the number of migrations applied; undefined if no row came back. */
export async function databaseStatus(pool: pg.Pool): Promise<{ version: string; migrations: number } | undefined> {
  const { rows } = await pool.query<{ version: string; migrations: number }>(
    `SELECT current_setting('server_version') AS version,
            (SELECT count(*)::int FROM schema_migrations) AS migrations`,
  );
  return rows[0];
}
