/** Read queries behind the read API: leaderboard pages and single players. */
import type pg from 'pg';

export interface LeaderboardEntryRow {
  rank: number;
  playerId: string;
  displayName: string | null;
  score: number;
  cluesFound: number;
  treasuresClaimed: number;
  active: boolean;
}

const ENTRY_COLUMNS = `player_id AS "playerId", display_name AS "displayName", score,
  clues_found AS "cluesFound", treasures_claimed AS "treasuresClaimed", active`;

/** The hunt's asOf, or undefined when the hunt is unknown. */
export async function huntAsOf(pool: pg.Pool, huntId: string): Promise<{ asOf: Date | null } | undefined> {
  const { rows } = await pool.query<{ as_of: Date | null }>({
    name: 'hunt-as-of',
    text: 'SELECT as_of FROM hunts WHERE hunt_id = $1',
    values: [huntId],
  });
  return rows[0] ? { asOf: rows[0].as_of } : undefined;
}

/** Score descending, then playerId ascending in byte order (the column's "C" collation). */
export async function topEntries(pool: pg.Pool, huntId: string, limit: number): Promise<LeaderboardEntryRow[]> {
  const { rows } = await pool.query<LeaderboardEntryRow>({
    name: 'leaderboard-top',
    text: `SELECT (row_number() OVER (ORDER BY score DESC, player_id))::int AS rank, ${ENTRY_COLUMNS}
             FROM player_scores WHERE hunt_id = $1
            ORDER BY score DESC, player_id LIMIT $2`,
    values: [huntId, limit],
  });
  return rows;
}

export async function playerEntry(pool: pg.Pool, huntId: string, playerId: string): Promise<LeaderboardEntryRow | undefined> {
  const { rows } = await pool.query<LeaderboardEntryRow>({
    name: 'leaderboard-player',
    text: `SELECT (1 + (SELECT count(*) FROM player_scores o
                         WHERE o.hunt_id = p.hunt_id
                           AND (o.score > p.score OR (o.score = p.score AND o.player_id < p.player_id))))::int AS rank,
                  ${ENTRY_COLUMNS}
             FROM player_scores p WHERE hunt_id = $1 AND player_id = $2`,
    values: [huntId, playerId],
  });
  return rows[0];
}
