/**
 * How long the oldest transaction on the database has been open: the read API's /metrics
 * shows it (src/api/store-metrics.ts) for HuntTransactionOpenTooLong.
 *
 * While a transaction stays open, vacuum keeps every row version it might still see: the rows
 * the hot path replaces on every event (a player's score, a hunt's stats) pile up dead, and
 * every commit reads and writes through more of them. A session left idle in a transaction
 * (an analyst's psql, a client that froze mid-transaction) slows the stream a little more
 * each hour, and nothing else says why. Our own processes' sessions cannot stay idle in one
 * (idle_in_transaction_session_timeout), and no job step's statement runs past its limit.
 */
import type pg from 'pg';

/**
 * Seconds since the oldest open transaction of the database began: client sessions other than
 * this one (a role without pg_read_all_stats sees its own role's only), and transactions
 * prepared for a two-phase commit, which hold the rows as long and belong to no session. 0 when
 * none is open.
 */
export async function oldestTransactionSeconds(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ seconds: number }>({
    name: 'monitoring-oldest-transaction',
    text: `SELECT coalesce(extract(epoch FROM clock_timestamp() - min(began)), 0)::float8 AS seconds
             FROM (SELECT xact_start AS began FROM pg_stat_activity
                    WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
                   UNION ALL
                   SELECT prepared FROM pg_prepared_xacts WHERE database = current_database()) AS open`,
  });
  return Number(rows[0]?.seconds ?? 0);
}
