/**
 * The batch side of the scoring rules (DESIGN invariant 4): set-based SQL that computes the
 * FINAL projections from the raw event store, in event-time order, exactly what the
 * reference fold (src/rules/reference.ts) computes. Used by reprocess to fill shadow tables
 * and meant for reconciliation to recompute hunts into scratch tables.
 *
 * Every rule is "the earliest (or latest) event of a group by (occurred_at, event_id)":
 * `DISTINCT ON ... ORDER BY occurred_at, event_id`. Ids are `COLLATE "C"`, so ordering by
 * event_id is byte order, the contract's tie-break. Besides the values, it fills the
 * (occurred_at, event_id) stamps of display name and active flag the way the hot path does,
 * so the hot path keeps comparing event times correctly on rows written here.
 */
import type pg from 'pg';

/** Table names (unquoted identifiers) with the live tables' columns. */
export interface ProjectionTargets {
  players: string;
  clueCredits: string;
  treasureWinners: string;
  /**
   * Optional: a table with the columns of `hunts` and a primary key on hunt_id. Rows of the
   * hunts that have events in scope are upserted (events_applied, as_of); other rows are
   * left alone, so `hunts` itself (the fence table) is a valid target.
   */
  huntStats?: string;
}

export const LIVE_PROJECTION_TABLES = {
  players: 'player_scores',
  clueCredits: 'clue_credits',
  treasureWinners: 'treasure_winners',
} as const satisfies ProjectionTargets;

export interface RecomputeFilter {
  /** Only these hunts (every event of them, subject to maxSeq); all hunts when absent. */
  huntIds?: readonly string[];
  /** Only events with seq <= maxSeq. */
  maxSeq?: number;
}

export interface RecomputeCounts {
  /** Projection rows removed from the targets before recomputing (players, credits, winners). */
  deleted: number;
  players: number;
  clueCredits: number;
  treasureWinners: number;
  huntStats: number;
}

/**
 * Replaces the targets' rows of the filter's hunts (all rows when no hunt filter) with the
 * recomputation from `events`. Run it inside the caller's transaction: the delete and the
 * inserts must commit together.
 */
export async function recomputeInto(client: pg.ClientBase, targets: ProjectionTargets, filter: RecomputeFilter = {}): Promise<RecomputeCounts> {
  if (filter.huntIds?.length === 0) return { deleted: 0, players: 0, clueCredits: 0, treasureWinners: 0, huntStats: 0 };
  const scope = eventScope(filter);
  const t = {
    players: quoteIdent(targets.players),
    credits: quoteIdent(targets.clueCredits),
    winners: quoteIdent(targets.treasureWinners),
  };
  // The targets' own rows in scope: the filter's hunts, or everything.
  const inScope = (alias: string) => (filter.huntIds ? `${alias}.hunt_id = ANY($1::text[])` : 'true');
  const huntParams = filter.huntIds ? [filter.huntIds] : [];

  let deleted = 0;
  for (const table of [t.players, t.credits, t.winners]) {
    deleted += (await client.query(`DELETE FROM ${table} x WHERE ${inScope('x')}`, huntParams)).rowCount ?? 0;
  }
  const credits = await client.query(creditsSql(t.credits, scope.where), scope.values);
  const winners = await client.query(winnersSql(t.winners, scope.where), scope.values);
  // Scores are summed from the credits and wins just written, so they cannot disagree.
  const players = await client.query(playersSql(t, scope.where, inScope), scope.values);
  const stats = targets.huntStats ? await client.query(huntStatsSql(quoteIdent(targets.huntStats), scope.where), scope.values) : undefined;
  return {
    deleted,
    players: players.rowCount ?? 0,
    clueCredits: credits.rowCount ?? 0,
    treasureWinners: winners.rowCount ?? 0,
    huntStats: stats?.rowCount ?? 0,
  };
}

/** `"name"`, doubled quotes inside: target names come from code, but never trust them raw. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * The WHERE clause over `events e` and its parameters. The hunt filter is always $1 when
 * present, so `inScope` above can share the parameter list. Built per filter rather than
 * `($1 IS NULL OR ...)`, which would keep the planner off the (hunt_id, ...) index.
 */
function eventScope(filter: RecomputeFilter): { where: string; values: unknown[] } {
  const conditions: string[] = [];
  const values: unknown[] = [];
  if (filter.huntIds) {
    values.push(filter.huntIds);
    conditions.push(`e.hunt_id = ANY($${values.length}::text[])`);
  }
  if (filter.maxSeq !== undefined) {
    values.push(filter.maxSeq);
    conditions.push(`e.seq <= $${values.length}::bigint`);
  }
  return { where: conditions.length > 0 ? conditions.join(' AND ') : 'true', values };
}

/** Earliest clue.found per (hunt, player, clue) scores +points; earliest hint.used costs its penalty. */
function creditsSql(table: string, where: string): string {
  return `
    INSERT INTO ${table} (hunt_id, player_id, clue_id, kind, event_id, occurred_at, points)
    SELECT DISTINCT ON (hunt_id, player_id, clue_id, kind) hunt_id, player_id, clue_id, kind, event_id, occurred_at, points
      FROM (SELECT e.hunt_id, e.player_id, (e.payload->>'clueId') COLLATE "C" AS clue_id,
                   CASE e.type WHEN 'clue.found' THEN 'found' ELSE 'hint' END AS kind,
                   e.event_id, e.occurred_at,
                   (CASE e.type WHEN 'clue.found' THEN e.payload->>'points' ELSE e.payload->>'penalty' END)::int AS points
              FROM events e
             WHERE e.type IN ('clue.found', 'hint.used') AND ${where}) c
     ORDER BY hunt_id, player_id, clue_id, kind, occurred_at, event_id`;
}

/** One winner per (hunt, treasure): the earliest claim, ties to the smallest eventId. */
function winnersSql(table: string, where: string): string {
  return `
    INSERT INTO ${table} (hunt_id, treasure_id, player_id, event_id, occurred_at, points)
    SELECT DISTINCT ON (e.hunt_id, (e.payload->>'treasureId') COLLATE "C")
           e.hunt_id, (e.payload->>'treasureId') COLLATE "C", e.player_id, e.event_id, e.occurred_at, (e.payload->>'points')::int
      FROM events e
     WHERE e.type = 'treasure.claimed' AND ${where}
     ORDER BY e.hunt_id, (e.payload->>'treasureId') COLLATE "C", e.occurred_at, e.event_id`;
}

/**
 * One row per (hunt, player) with any event in scope. Display name: the latest player.joined
 * that has one; active: unless the latest joined/left is a left (no such event: active, as
 * an implicit join). The stamps record which event decided each, as the hot path does.
 */
function playersSql(t: { players: string; credits: string; winners: string }, where: string, inScope: (alias: string) => string): string {
  return `
    WITH roster AS (
      SELECT e.hunt_id, e.player_id FROM events e WHERE ${where} GROUP BY e.hunt_id, e.player_id
    ), named AS (
      SELECT DISTINCT ON (e.hunt_id, e.player_id) e.hunt_id, e.player_id, e.payload->>'displayName' AS display_name, e.occurred_at, e.event_id
        FROM events e
       WHERE e.type = 'player.joined' AND e.payload->>'displayName' IS NOT NULL AND ${where}
       ORDER BY e.hunt_id, e.player_id, e.occurred_at DESC, e.event_id DESC
    ), membership AS (
      SELECT DISTINCT ON (e.hunt_id, e.player_id) e.hunt_id, e.player_id, e.type = 'player.joined' AS active, e.occurred_at, e.event_id
        FROM events e
       WHERE e.type IN ('player.joined', 'player.left') AND ${where}
       ORDER BY e.hunt_id, e.player_id, e.occurred_at DESC, e.event_id DESC
    ), credited AS (
      SELECT c.hunt_id, c.player_id, sum(CASE c.kind WHEN 'found' THEN c.points ELSE -c.points END) AS score,
             count(*) FILTER (WHERE c.kind = 'found') AS clues_found
        FROM ${t.credits} c WHERE ${inScope('c')} GROUP BY c.hunt_id, c.player_id
    ), won AS (
      SELECT w.hunt_id, w.player_id, sum(w.points) AS score, count(*) AS treasures_claimed
        FROM ${t.winners} w WHERE ${inScope('w')} GROUP BY w.hunt_id, w.player_id
    )
    INSERT INTO ${t.players} (hunt_id, player_id, score, clues_found, treasures_claimed,
      display_name, display_name_at, display_name_event, active, active_at, active_event)
    SELECT r.hunt_id, r.player_id, coalesce(c.score, 0) + coalesce(w.score, 0), coalesce(c.clues_found, 0),
           coalesce(w.treasures_claimed, 0), n.display_name, n.occurred_at, n.event_id,
           coalesce(m.active, true), m.occurred_at, m.event_id
      FROM roster r
      LEFT JOIN named n ON n.hunt_id = r.hunt_id AND n.player_id = r.player_id
      LEFT JOIN membership m ON m.hunt_id = r.hunt_id AND m.player_id = r.player_id
      LEFT JOIN credited c ON c.hunt_id = r.hunt_id AND c.player_id = r.player_id
      LEFT JOIN won w ON w.hunt_id = r.hunt_id AND w.player_id = r.player_id`;
}

/** events_applied is the number of stored events, as_of the newest occurred_at (the API's asOf). */
function huntStatsSql(table: string, where: string): string {
  return `
    INSERT INTO ${table} AS h (hunt_id, events_applied, as_of)
    SELECT e.hunt_id, count(*), max(e.occurred_at) FROM events e WHERE ${where} GROUP BY e.hunt_id
    ON CONFLICT (hunt_id) DO UPDATE SET events_applied = excluded.events_applied, as_of = excluded.as_of, updated_at = now()`;
}
