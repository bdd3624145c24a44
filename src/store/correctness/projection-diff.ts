/**
 * Reconcile's comparison of the live projections with their recomputation, in two halves so
 * that the hunts' fence is held for the size of the drift, not of the hunts:
 *
 * 1. Outside the fence (findSuspects): every row of the hunts is compared, the live row as it
 *    is at that statement's snapshot against the recomputation up to coveredSeq. The keys that
 *    differ are the suspects. The hot path goes on storing the hunts' events meanwhile.
 * 2. Under the fence (addKeysTouchedSince, before the merge of the events since coveredSeq):
 *    the keys those events touch become suspects too. Only they can have changed since the
 *    comparison, on either side:
 *    - live rows change only through stored events (the hot path: a credit or a treasure of
 *      the event's own key, the event's own player; it never displaces an earlier winner),
 *      and every event stored after coveredSeq was read has a larger seq; reprocess, the one
 *      wholesale writer, waits for the run (reconcile holds ROW SHARE on `hunts`);
 *    - the merge changes the rows of those keys, and the players it displaces as winners of
 *      those treasures, who are the recomputation's winners of them before the merge.
 *    A key that is no suspect was equal at the comparison and neither side has changed it.
 * 3. Still under the fence, after the merge: only the suspects are compared again, recorded
 *    (recordDrift) and rewritten (repairSuspects).
 *
 * A live row changed by hand between the comparison and the fence is the one drift a run can
 * miss; the next run of the hunt finds it.
 */
import type pg from 'pg';
import { CLUE_CREDIT_TYPES, clueCreditKind } from '../../rules/sql';
import { LIVE_PROJECTION_TABLES } from '../batch/recompute';

/** The temporary tables a reconcile recomputes into (targets of recomputeInto and mergeInto). */
export const FINAL = { players: 'final_players', clueCredits: 'final_clue_credits', treasureWinners: 'final_treasure_winners' } as const;

/** Each live projection, its recomputation, the table of its keys that may differ, and its key. */
const PROJECTIONS = [
  { live: LIVE_PROJECTION_TABLES.players, final: FINAL.players, suspects: 'suspect_players', key: ['hunt_id', 'player_id'] },
  { live: LIVE_PROJECTION_TABLES.clueCredits, final: FINAL.clueCredits, suspects: 'suspect_credits', key: ['hunt_id', 'player_id', 'clue_id', 'kind'] },
  { live: LIVE_PROJECTION_TABLES.treasureWinners, final: FINAL.treasureWinners, suspects: 'suspect_treasures', key: ['hunt_id', 'treasure_id'] },
] as const;
const [PLAYERS, CREDITS, TREASURES] = PROJECTIONS;

const sameKey = (key: readonly string[], a: string, b: string) => key.map((column) => `${a}.${column} = ${b}.${column}`).join(' AND ');

/**
 * The session's temporary tables, emptied by every commit. Suspect keys are all text; `kind`
 * keeps the default collation, as in clue_credits.
 */
export async function createComparisonTables(client: pg.ClientBase): Promise<void> {
  for (const { live, final, suspects, key } of PROJECTIONS) {
    await client.query(`CREATE TEMP TABLE IF NOT EXISTS ${final} (LIKE ${live} INCLUDING ALL) ON COMMIT DELETE ROWS`);
    const columns = key.map((column) => `${column} text ${column === 'kind' ? '' : 'COLLATE "C"'} NOT NULL`).join(', ');
    await client.query(`CREATE TEMP TABLE IF NOT EXISTS ${suspects} (${columns}, PRIMARY KEY (${key.join(', ')})) ON COMMIT DELETE ROWS`);
  }
}

/**
 * Outside the fence: compares every row of `hunts`, live against the recomputation, and
 * keeps the keys that differ. Returns the players compared, per hunt.
 */
export async function findSuspects(client: pg.ClientBase, hunts: readonly string[]): Promise<Map<string, number>> {
  let playersCompared = new Map<string, number>();
  for (const projection of PROJECTIONS) {
    const { live, final, suspects, key } = projection;
    const { rows } = await client.query<{ hunt_id: string; n: number }>(
      `WITH compared AS (
         SELECT ${key.map((column) => `coalesce(f.${column}, l.${column}) AS ${column}`).join(', ')},
                ROW(f.*) IS DISTINCT FROM ROW(l.*) AS differs
           FROM ${final} f FULL JOIN (SELECT * FROM ${live} WHERE hunt_id = ANY($1::text[])) l ON ${sameKey(key, 'f', 'l')}
       ), kept AS (
         INSERT INTO ${suspects} SELECT ${key.join(', ')} FROM compared WHERE differs
       )
       SELECT hunt_id, count(*)::int AS n FROM compared GROUP BY hunt_id`,
      [hunts],
    );
    if (projection === PLAYERS) playersCompared = new Map(rows.map((r) => [r.hunt_id, r.n]));
  }
  return playersCompared;
}

/**
 * Under the fence, before the merge: the keys the events of `hunts` stored after
 * `coveredSeq` touch, and the recomputation's winners of the treasures concerned (whom the
 * merge may displace), become suspects. Statistics follow, for the plans of the
 * comparison and repair of the suspects.
 */
export async function addKeysTouchedSince(client: pg.ClientBase, hunts: readonly string[], coveredSeq: number): Promise<void> {
  const since = 'e.seq > $2::bigint AND e.hunt_id = ANY($1::text[])';
  const statements = [
    `INSERT INTO ${PLAYERS.suspects} SELECT DISTINCT e.hunt_id, e.player_id FROM events e WHERE ${since} ON CONFLICT DO NOTHING`,
    `INSERT INTO ${CREDITS.suspects}
     SELECT DISTINCT e.hunt_id, e.player_id, e.payload->>'clueId', ${clueCreditKind('e.type')}
       FROM events e WHERE e.type IN ${CLUE_CREDIT_TYPES} AND ${since} ON CONFLICT DO NOTHING`,
    `INSERT INTO ${TREASURES.suspects}
     SELECT DISTINCT e.hunt_id, e.payload->>'treasureId' FROM events e WHERE e.type = 'treasure.claimed' AND ${since} ON CONFLICT DO NOTHING`,
  ];
  for (const statement of statements) await client.query(statement, [hunts, coveredSeq]);
  await client.query(
    `INSERT INTO ${PLAYERS.suspects} SELECT f.hunt_id, f.player_id FROM ${FINAL.treasureWinners} f
       JOIN ${TREASURES.suspects} s ON ${sameKey(TREASURES.key, 's', 'f')} ON CONFLICT DO NOTHING`,
  );
  await client.query(`ANALYZE ${PROJECTIONS.map((p) => p.suspects).join(', ')}`);
}

/** The compared columns of a player row, as JSON for the drift record. */
const PLAYER_JSON = (t: string) =>
  `jsonb_build_object('score', ${t}.score, 'cluesFound', ${t}.clues_found, 'treasuresClaimed', ${t}.treasures_claimed,
                      'displayName', ${t}.display_name, 'active', ${t}.active)`;
const TREASURE_JSON = (t: string) => `jsonb_build_object('playerId', ${t}.player_id, 'eventId', ${t}.event_id, 'points', ${t}.points)`;
const CREDIT_JSON = (t: string) => `jsonb_build_object('eventId', ${t}.event_id, 'occurredAt', ${t}.occurred_at, 'points', ${t}.points)`;

/** The kinds of drift recorded, with the subject each names: ids cannot contain '/' (CONTRACT). */
const DRIFT_KINDS = [
  { kind: 'player', projection: PLAYERS, json: PLAYER_JSON, subject: 's.player_id' },
  { kind: 'treasure', projection: TREASURES, json: TREASURE_JSON, subject: 's.treasure_id' },
  { kind: 'credit', projection: CREDITS, json: CREDIT_JSON, subject: `s.player_id || '/' || s.clue_id || '/' || s.kind` },
] as const;

export interface HuntDrift {
  hunt_id: string;
  players_drifted: number;
  treasures_changed: number;
  credits_drifted: number;
}

/**
 * Under the fence, after the merge: records the suspects that differ under `runId` and
 * returns each hunt's drift counts. Counts are of everything recorded under the run: what
 * an earlier attempt committed (visible to this statement) plus what this one adds. A retry
 * that redoes a group already committed (a crash before its heartbeat) finds the drift
 * repaired, or already recorded, and must not report, or write over the run's row with, zero.
 */
export async function recordDrift(client: pg.ClientBase, hunts: readonly string[], runId: string): Promise<HuntDrift[]> {
  const differing = DRIFT_KINDS.map(({ kind, projection: p, json, subject }) =>
    `SELECT s.hunt_id, '${kind}' AS kind, ${subject} AS subject_id, l.live, f.final
       FROM ${p.suspects} s
       LEFT JOIN LATERAL (SELECT ${json('x')} AS final FROM ${p.final} x WHERE ${sameKey(p.key, 'x', 's')}) f ON true
       LEFT JOIN LATERAL (SELECT ${json('x')} AS live FROM ${p.live} x WHERE ${sameKey(p.key, 'x', 's')}) l ON true
      WHERE l.live IS DISTINCT FROM f.final`);
  const count = (kind: string) =>
    `(SELECT count(*)::int FROM recorded r WHERE r.hunt_id = h AND r.kind = '${kind}')
       + (SELECT count(*)::int FROM reconcile_drift d WHERE d.run_id = $2 AND d.hunt_id = h AND d.kind = '${kind}')`;
  const { rows } = await client.query<HuntDrift>(
    `WITH recorded AS (
       INSERT INTO reconcile_drift (run_id, hunt_id, kind, subject_id, live, final)
       SELECT $2, * FROM (${differing.join(' UNION ALL ')}) d
       ON CONFLICT (run_id, hunt_id, kind, subject_id) DO NOTHING
       RETURNING hunt_id, kind
     )
     SELECT h AS hunt_id, ${count('player')} AS players_drifted, ${count('treasure')} AS treasures_changed, ${count('credit')} AS credits_drifted
       FROM unnest($1::text[]) AS h`,
    [hunts, runId],
  );
  return rows;
}

/**
 * Under the fence, after the merge: rewrites the live rows of the suspects that differ from
 * the recomputation, in every table, credits included (a credit can differ where no player
 * total does: an equal-points earlier find).
 */
export async function repairSuspects(client: pg.ClientBase): Promise<void> {
  for (const { live, final, suspects, key } of PROJECTIONS) {
    await client.query(
      `DELETE FROM ${live} l USING ${suspects} s
        WHERE ${sameKey(key, 'l', 's')}
          AND NOT EXISTS (SELECT 1 FROM ${final} f WHERE ${sameKey(key, 'f', 'l')} AND ROW(f.*) IS NOT DISTINCT FROM ROW(l.*))`,
    );
    await client.query(
      `INSERT INTO ${live} SELECT f.* FROM ${final} f JOIN ${suspects} s ON ${sameKey(key, 'f', 's')}
        WHERE NOT EXISTS (SELECT 1 FROM ${live} l WHERE ${sameKey(key, 'l', 'f')})`,
    );
  }
}
