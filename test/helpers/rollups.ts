/**
 * The rollup tests' two views of the same windows: aggregated from scratch over every raw
 * event (the definition a flush must meet), and as stored, column for column.
 */
import type pg from 'pg';

export type RollupUnit = 'minute' | 'hour';

/** Every window of `unit` aggregated from all raw events, in (hunt, window) order. */
export async function rollupsFromScratch(pool: pg.Pool, unit: RollupUnit): Promise<pg.QueryResultRow[]> {
  const { rows } = await pool.query(
    `SELECT hunt_id, date_trunc('${unit}', occurred_at, 'UTC') AS window_start, count(*)::int AS events,
            count(DISTINCT player_id)::int AS players,
            count(*) FILTER (WHERE type = 'clue.found')::int AS clues_found,
            coalesce(sum((payload->>'points')::int) FILTER (WHERE type = 'clue.found'), 0)::int AS clue_points,
            count(*) FILTER (WHERE type = 'hint.used')::int AS hints_used,
            coalesce(sum((payload->>'penalty')::int) FILTER (WHERE type = 'hint.used'), 0)::int AS hint_penalties,
            count(*) FILTER (WHERE type = 'treasure.claimed')::int AS treasure_claims
       FROM events GROUP BY 1, 2 ORDER BY 1, 2`,
  );
  return rows;
}

/** The stored rows of `unit`, in the same shape and order. */
export async function storedRollups(pool: pg.Pool, unit: RollupUnit): Promise<pg.QueryResultRow[]> {
  const { rows } = await pool.query(
    `SELECT hunt_id, window_start, events::int, players::int, clues_found::int, clue_points::int, hints_used::int, hint_penalties::int, treasure_claims::int
       FROM rollup_${unit} ORDER BY 1, 2`,
  );
  return rows;
}
