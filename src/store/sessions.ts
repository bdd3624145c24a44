/**
 * Other Postgres sessions, described for an operator who must find and end one: a batch step
 * that waits on a session left idle in a transaction fails naming it, since every retry would
 * wait on it the same way. No query text: it may hold data.
 */
import type pg from 'pg';

/**
 * This database's oid, as SQL, for pg_locks, which lists the locks of every database of the
 * cluster: a database cloned from this one (CREATE DATABASE ... TEMPLATE: a tenant's, a
 * staging copy) has tables of the same oids, and its sessions' locks were taken for ours.
 */
export const THIS_DATABASE = '(SELECT oid FROM pg_database WHERE datname = current_database())';

/**
 * `pid N (application "…", user "…", state, transaction open S s)` for each of `pids`, oldest
 * transaction first; a session that is not a client's names its kind first (`autovacuum worker, …`).
 */
export async function describeSessions(db: pg.Pool | pg.ClientBase, pids: readonly number[]): Promise<string[]> {
  if (pids.length === 0) return [];
  const { rows } = await db.query<{ pid: number; backend_type: string; application_name: string; usename: string | null; state: string | null; xact_seconds: number | null }>(
    // clock_timestamp(): now() is the start of the caller's own transaction, maybe 30 s old.
    `SELECT pid, backend_type, application_name, usename, state, floor(extract(epoch FROM clock_timestamp() - xact_start))::int AS xact_seconds
       FROM pg_stat_activity WHERE pid = ANY($1::int[])
      ORDER BY xact_start NULLS LAST LIMIT 5`,
    [pids],
  );
  return rows.map((r) =>
    `pid ${r.pid} (${r.backend_type === 'client backend' ? '' : `${r.backend_type}, `}application ${JSON.stringify(r.application_name)}, user ${JSON.stringify(r.usename ?? '')}, ${r.state ?? 'unknown state'}` +
      `${r.xact_seconds === null ? '' : `, transaction open ${r.xact_seconds} s`})`,
  );
}
