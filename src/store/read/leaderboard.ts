/** Read queries behind the read API: leaderboard pages and single players, as the reference fold's LeaderboardEntry rows. */
import type pg from 'pg';
import type { LeaderboardEntry } from '../../rules/reference';
import { LEADERBOARD_ORDER, scoresAhead, tiedAhead } from '../../rules/sql';

const ENTRY_COLUMNS = `player_id AS "playerId", display_name AS "displayName", score,
  clues_found AS "cluesFound", treasures_claimed AS "treasuresClaimed", active`;

export interface LeaderboardPage {
  huntId: string;
  /** The hunt's newest applied event (ISO); null only in the message a live stream sends for a hunt not known yet. */
  asOf: string | null;
  entries: LeaderboardEntry[];
}

/** A hunt the read API knows: one with an applied event (as_of is the newest one's time, set by every writer). */
const KNOWN_HUNT = 'h.as_of IS NOT NULL';

/**
 * The top `limit` entries of each hunt asked for, with its asOf, in one statement (one
 * snapshot, one round trip however many hunts: live streams read every changed hunt of a
 * 100 ms window at once). Score descending, then playerId ascending in byte order (the
 * column's "C" collation). An unknown hunt is absent from the map: one with no event applied
 * (KNOWN_HUNT) is unknown, though writers may have made its row (a duplicate eventId under
 * another huntId locks that hunt's fence and then has no effect).
 */
export async function leaderboardPages(pool: pg.Pool, requests: readonly { huntId: string; limit: number }[]): Promise<Map<string, LeaderboardPage>> {
  if (requests.length === 0) return new Map();
  const { rows } = await pool.query<{ hunt_id: string; as_of: Date | null; entries: LeaderboardEntry[] }>({
    name: 'leaderboard-pages',
    text: `SELECT h.hunt_id, h.as_of, e.entries
             FROM unnest($1::text[], $2::int[]) AS r(hunt_id, page_size)
             JOIN hunts h ON h.hunt_id = r.hunt_id AND ${KNOWN_HUNT}
            CROSS JOIN LATERAL (
                  SELECT coalesce(json_agg(t ORDER BY t.rank), '[]'::json) AS entries
                    FROM (SELECT (row_number() OVER (ORDER BY ${LEADERBOARD_ORDER}))::int AS rank, ${ENTRY_COLUMNS}
                            FROM player_scores p WHERE p.hunt_id = r.hunt_id
                           ORDER BY ${LEADERBOARD_ORDER} LIMIT r.page_size) t) e`,
    values: [requests.map((r) => r.huntId), requests.map((r) => r.limit)],
  });
  return new Map(rows.map((row) => [row.hunt_id, { huntId: row.hunt_id, asOf: row.as_of?.toISOString() ?? null, entries: row.entries }]));
}

/** One hunt's leaderboard page, or undefined when the hunt is unknown. */
export async function leaderboardPage(pool: pg.Pool, huntId: string, limit: number): Promise<LeaderboardPage | undefined> {
  return (await leaderboardPages(pool, [{ huntId, limit }])).get(huntId);
}

/** Whether the hunt exists (for a player's 404 message). */
export async function huntExists(pool: pg.Pool, huntId: string): Promise<boolean> {
  const { rows } = await pool.query({ name: 'hunt-exists', text: `SELECT 1 FROM hunts h WHERE h.hunt_id = $1 AND ${KNOWN_HUNT}`, values: [huntId] });
  return rows.length > 0;
}

/**
 * One player's entry, ranked by counting the players ahead in two ranges of the leaderboard
 * index, so a lookup costs as much as the player's rank: one count with OR read every player
 * of the hunt whatever the rank (a 1,000,000-player hunt: about 95 ms for the top player as
 * for the last; now 0.2-0.6 ms for the top one, 1.5-2.6 ms at rank 10,000, and the last one
 * still about 130 ms).
 */
export async function playerEntry(pool: pg.Pool, huntId: string, playerId: string): Promise<LeaderboardEntry | undefined> {
  const { rows } = await pool.query<LeaderboardEntry>({
    name: 'leaderboard-player',
    text: `SELECT (1 + (SELECT count(*) FROM player_scores o WHERE o.hunt_id = p.hunt_id AND ${scoresAhead('o', 'p')})
                    + (SELECT count(*) FROM player_scores o WHERE o.hunt_id = p.hunt_id AND ${tiedAhead('o', 'p')}))::int AS rank,
                  ${ENTRY_COLUMNS}
             FROM player_scores p WHERE hunt_id = $1 AND player_id = $2`,
    values: [huntId, playerId],
  });
  return rows[0];
}
