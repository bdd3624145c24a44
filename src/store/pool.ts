/** The Postgres connection pool, created from configuration. */
import pg from 'pg';
import type { Config } from '../config';

// bigint columns (counts, offsets, seq) arrive as strings by default; they stay well inside
// Number's safe range here, so parse them as numbers once for every query.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

/**
 * An idle client whose server goes away (restart, failover) makes the pool emit 'error';
 * unhandled, that would kill the process. The pool drops that client and the next query
 * connects anew, so the error only needs reporting.
 */
export function createPool(
  config: Pick<Config, 'databaseUrl'>,
  max = 10,
  onIdleClientError: (err: Error) => void = () => undefined,
): pg.Pool {
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max });
  pool.on('error', onIdleClientError);
  return pool;
}
