/**
 * The whole live projection (player_scores, clue_credits, treasure_winners) in the reference
 * fold's shape, so a test or the soak can compare it with foldEvents by toEqual. Reads every
 * row: for checks on test-sized databases, not for the read API.
 */
import type pg from 'pg';
import { normalizeFoldResult, type FoldResult } from '../../rules/reference';

export async function readProjection(db: pg.Pool | pg.ClientBase): Promise<FoldResult> {
  const players = await db.query(
    `SELECT hunt_id AS "huntId", player_id AS "playerId", display_name AS "displayName", score::int AS score,
            clues_found AS "cluesFound", treasures_claimed AS "treasuresClaimed", active FROM player_scores`,
  );
  const credits = await db.query(
    `SELECT hunt_id AS "huntId", player_id AS "playerId", clue_id AS "clueId", event_id AS "eventId", kind, points FROM clue_credits`,
  );
  const winners = await db.query(
    `SELECT hunt_id AS "huntId", treasure_id AS "treasureId", player_id AS "playerId", event_id AS "eventId", points FROM treasure_winners`,
  );
  // clue_credits holds both of the fold's lists: kind 'found' (clueCredits, points) and
  // 'hint' (hintPenalties, the penalty stored as points); see clueCreditKind in rules/sql.ts.
  return normalizeFoldResult({
    players: players.rows,
    clueCredits: credits.rows.filter((c) => c.kind === 'found').map(({ kind: _kind, ...c }) => c),
    hintPenalties: credits.rows.filter((c) => c.kind === 'hint').map(({ kind: _kind, points, ...c }) => ({ ...c, penalty: points })),
    treasureWinners: winners.rows,
  });
}
