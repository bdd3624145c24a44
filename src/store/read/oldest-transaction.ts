/**
 * How long the oldest transaction on the database has been open: the read API's /metrics
 * shows it (src/api/store-metrics.ts) for HuntTransactionOpenTooLong.
 *
 * While a transaction stays open, vacuum keeps every row version it might still see: the rows
 * the hot path replaces on every event (a player's score, a hunt's stats) pile up dead, and
 * every commit reads and writes through more of them. A session left idle in a transaction
 * (an analyst's psql, a client that froze mid-transaction) slows the stream a little more
 * each hour, and nothing else says why. Ours end within their limits: a session of `hunt
 * ingest` or `hunt worker` idle in one past 20 s is ended (idle_in_transaction_session_timeout),
 * except reprocess's fill, whose sessions may wait up to its step's 2 hours.
 */
import type pg from 'pg';

/**
 * Seconds since the oldest transaction that holds vacuum back began: one that has written (it
 * has a transaction id) or holds a snapshot (REPEATABLE READ, a cursor, a statement running),
 * in a session of this database other than this one (a role without pg_read_all_stats sees its
 * own role's only), or prepared for a two-phase commit (which holds the rows as long and
 * belongs to no session). A READ COMMITTED session idle in a transaction after reading only
 * holds neither, and is not counted: vacuum goes on past it. Vacuum's own are not counted
 * either; a standby's feedback and replication slots are not seen here. 0 when none.
 */
export async function oldestTransactionSeconds(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ seconds: number }>({
    name: 'monitoring-oldest-transaction',
    text: `SELECT coalesce(extract(epoch FROM clock_timestamp() - min(began)), 0)::float8 AS seconds
             FROM (SELECT xact_start AS began FROM pg_stat_activity
                    WHERE datname = current_database() AND pid <> pg_backend_pid()
                      AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)
                      AND backend_type NOT IN ('autovacuum worker', 'autovacuum launcher')
                   UNION ALL
                   SELECT prepared FROM pg_prepared_xacts WHERE database = current_database()) AS open`,
  });
  return Number(rows[0]?.seconds ?? 0);
}
