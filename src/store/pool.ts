/** The Postgres connection pool, created from configuration. */
import pg from 'pg';
import type { Config } from '../config';

// bigint columns (counts, offsets, seq) arrive as strings by default; they stay well inside
// Number's safe range here, so parse them as numbers once for every query.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export function createPool(config: Pick<Config, 'databaseUrl'>, max = 10): pg.Pool {
  return new pg.Pool({ connectionString: config.databaseUrl, max });
}
