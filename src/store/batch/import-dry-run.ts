/** What a dry-run import asks of the raw store: which of its events are already there. */
import type pg from 'pg';

/** How many of `eventIds` (distinct) the events table already holds. */
export async function countStoredEvents(pool: pg.Pool | pg.ClientBase, eventIds: readonly string[]): Promise<number> {
  const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE event_id = ANY($1::text[])', [eventIds]);
  return rows[0]?.n ?? 0;
}
