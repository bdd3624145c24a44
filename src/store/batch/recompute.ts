/**
 * The batch side of the scoring rules (DESIGN invariant 4): set-based SQL that computes the
 * FINAL projections from the raw event store in event-time order. It is derived from the
 * reference fold (src/rules/reference.ts), the rules' definition, is built from the rules'
 * SQL fragments (src/rules/sql.ts), and is property-tested against the fold: it must compute
 * exactly what the fold computes. Reprocess fills shadow tables with it; reconciliation
 * diffs the live projections against it.
 *
 * Every rule picks the earliest (or latest) event of a group by (occurred_at, event_id), and
 * a player's totals are sums over the picked rows. Ids are `COLLATE "C"`, so event_id orders
 * by bytes, the contract's tie-break. Because "earliest of a union" is "earliest of the
 * earliests", events stored later can also be MERGED into a final result exactly
 * (mergeInto), in time proportional to the new events rather than to the hunts they touch.
 *
 * Rows also get the (occurred_at, event_id) stamps of display name and active flag, as the
 * hot path writes them, so its later event-time comparisons keep working on these rows.
 */
import type pg from 'pg';
import { escapeIdentifier } from 'pg';
import {
  CLUE_CREDIT_TYPES,
  clueCreditAmount,
  clueCreditKind,
  eventTimeOrder,
  isClueFound,
  isEarlier,
  isLaterStamp,
  playerScore,
  signedCreditPoints,
  takeIfLater as take,
} from '../../rules/sql';

/** Table names (unquoted) with the live tables' columns and primary keys. */
export interface ProjectionTargets {
  players: string;
  clueCredits: string;
  treasureWinners: string;
  /**
   * Optional: a table shaped like `hunts`. Only rows of hunts with events in scope are
   * written, so `hunts` itself (the fence table) is a valid target.
   */
  huntStats?: string;
}

export const LIVE_PROJECTION_TABLES = {
  players: 'player_scores',
  clueCredits: 'clue_credits',
  treasureWinners: 'treasure_winners',
} as const satisfies ProjectionTargets;

export interface RecomputeFilter {
  /** Only these hunts (all their events, subject to maxSeq); every hunt when absent. */
  huntIds?: readonly string[];
  /** Only events with seq <= maxSeq. */
  maxSeq?: number;
  /**
   * 'replace' (the default): the targets' rows in scope are deleted first. 'empty': the
   * caller knows the targets hold no row in scope (a reprocess fill's fresh shadows), and
   * nothing is deleted: with no hunt's rows to find, the targets need no index (the fill
   * builds them at its end). Either way every row then goes in with a plain INSERT.
   */
  into?: 'replace' | 'empty';
}

export interface RecomputeCounts {
  players: number;
  clueCredits: number;
  treasureWinners: number;
  huntStats: number;
}

/** Memory per sort or hash of a recompute, per connection (lanes multiply it). */
const RECOMPUTE_WORK_MEM = '64MB';

/**
 * Replaces the targets' rows of the filter's hunts (all rows without a hunt filter) with the
 * recomputation from `events`, which it reads once, into a temporary copy (copyScope); with
 * `into: 'empty'`, writes the recomputation into targets that hold none of those rows. Run it
 * in the caller's transaction: delete and inserts must commit together, and outside one the
 * copy would be gone before it is read.
 */
export async function recomputeInto(client: pg.ClientBase, targets: ProjectionTargets, filter: RecomputeFilter = {}): Promise<RecomputeCounts> {
  if (filter.huntIds?.length === 0) return { players: 0, clueCredits: 0, treasureWinners: 0, huntStats: 0 };
  const conditions: string[] = [];
  const values: unknown[] = [];
  // Built per filter rather than `($1 IS NULL OR ...)`, which keeps the planner off the index.
  if (filter.huntIds) conditions.push(`e.hunt_id = ANY($${values.push(filter.huntIds)}::text[])`);
  if (filter.maxSeq !== undefined) conditions.push(`e.seq <= $${values.push(filter.maxSeq)}::bigint`);
  const where = conditions.join(' AND ') || 'true';
  const t = quoteTargets(targets);

  // The recompute sorts whole hunts (DISTINCT ON ... ORDER BY); with the default 4 MB these
  // sorts spill to disk. SET LOCAL lasts only to the end of the caller's transaction.
  await client.query(`SET LOCAL work_mem = '${RECOMPUTE_WORK_MEM}'`);
  if (filter.into !== 'empty') {
    await deleteProjectionRows(client, targets, filter.huntIds ? 'hunt_id = ANY($1::text[])' : 'true', filter.huntIds ? [filter.huntIds] : []);
  }
  const scope = await copyScope(client, where, values);
  // Totals are summed from the credits and wins as they are written, so they cannot disagree;
  // from what the inserts return, not from the targets, which a fill's have no index to find
  // a hunt's rows in (each lane of each chunk would read the whole shadow).
  await client.query(`CREATE TEMP TABLE ${CREDIT_TOTALS} (hunt_id text COLLATE "C", player_id text COLLATE "C", score bigint, clues_found bigint) ON COMMIT DROP`);
  await client.query(`CREATE TEMP TABLE ${WIN_TOTALS} (hunt_id text COLLATE "C", player_id text COLLATE "C", score bigint, won bigint) ON COMMIT DROP`);
  const clueCredits = await insertSummed(
    client,
    `INSERT INTO ${t.credits} ${CREDIT_COLUMNS} ${earliestCredits(scope)} RETURNING hunt_id, player_id, kind, points`,
    `INSERT INTO ${CREDIT_TOTALS} SELECT x.hunt_id, x.player_id, sum(${signedCreditPoints('x')}), count(*) FILTER (WHERE ${isClueFound('x')}) FROM inserted x GROUP BY x.hunt_id, x.player_id`,
  );
  const treasureWinners = await insertSummed(
    client,
    `INSERT INTO ${t.winners} ${WINNER_COLUMNS} ${earliestClaims(scope)} RETURNING hunt_id, player_id, points`,
    `INSERT INTO ${WIN_TOTALS} SELECT x.hunt_id, x.player_id, sum(x.points), count(*) FROM inserted x GROUP BY x.hunt_id, x.player_id`,
  );
  // Hash joins only: the roster's lists join on (hunt, player) with no index between them, and
  // for a hunt newer than the events table's statistics Postgres guesses one row each and
  // plans nested loops over them, quadratic in the hunt's players (10,000 players: 16.6 s;
  // 20,000: 62 s, against 0.36 s hashed). The scope's copy and the totals have no statistics
  // at all. Every scan here reads a temporary table whole.
  await client.query('SET LOCAL enable_nestloop = off');
  const totals = `credited AS (SELECT * FROM ${CREDIT_TOTALS}), won AS (SELECT * FROM ${WIN_TOTALS})`;
  // The targets hold none of these rows now (deleted, or never there): a plain insert.
  const players = await upsertRoster(client, t, scope, [], totals, false);
  await client.query('SET LOCAL enable_nestloop TO DEFAULT');
  const stats = t.stats ? await client.query(addHuntStats(t.stats, scope, 'replace')) : undefined;
  await client.query(`DROP TABLE ${scope.relation}, ${CREDIT_TOTALS}, ${WIN_TOTALS}`);
  return { players, clueCredits, treasureWinners, huntStats: stats?.rowCount ?? 0 };
}

/** Per-player sums of the credits and of the wins a recomputeInto call inserted, for its roster. */
const CREDIT_TOTALS = 'pg_temp.recompute_credit_totals';
const WIN_TOTALS = 'pg_temp.recompute_win_totals';

/** Runs `insert` (… RETURNING) and `sum` (reading its rows as `inserted`) as one statement; returns the rows inserted. */
async function insertSummed(client: pg.ClientBase, insert: string, sum: string): Promise<number> {
  const { rows } = await client.query<{ n: number }>(`WITH inserted AS (${insert}), summed AS (${sum}) SELECT count(*)::int AS n FROM inserted`);
  return rows[0]?.n ?? 0;
}

/** Deletes from the targets' players, credits and winners the rows `where` selects (its `$n` from `values`). */
export async function deleteProjectionRows(client: pg.ClientBase, targets: ProjectionTargets, where: string, values: readonly unknown[] = []): Promise<void> {
  const t = quoteTargets(targets);
  for (const table of [t.players, t.credits, t.winners]) await client.query(`DELETE FROM ${table} WHERE ${where}`, [...values]);
}

export interface MergeCounts {
  /** Events merged. */
  events: number;
  /** Projection rows the merge added (new players, credits, winners; replaced ones not counted). */
  rowsAdded: number;
}

/**
 * Merges the events with `afterSeq < seq <= maxSeq` (no upper bound when absent; only those
 * of `huntIds` when given) into targets that hold the final result of exactly the events up
 * to `afterSeq` (of the hunts concerned). Afterwards they hold the final result of all events
 * up to maxSeq. Run it in the caller's transaction.
 */
export async function mergeInto(
  client: pg.ClientBase,
  targets: ProjectionTargets,
  range: { afterSeq: number; maxSeq?: number; huntIds?: readonly string[] },
): Promise<MergeCounts> {
  const values: unknown[] = [range.afterSeq];
  const conditions = ['e.seq > $1::bigint'];
  if (range.maxSeq !== undefined) conditions.push(`e.seq <= $${values.push(range.maxSeq)}::bigint`);
  if (range.huntIds) conditions.push(`e.hunt_id = ANY($${values.push(range.huntIds)}::text[])`);
  const where = conditions.join(' AND ');
  const { rows: size } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM events e WHERE ${where}`, values);
  const events = size[0]?.n ?? 0;
  if (events === 0) return { events, rowsAdded: 0 };
  const t = quoteTargets(targets);
  const scope: EventScope = { relation: 'events', where };

  // New players start at zero; updateTotals below sums everyone concerned.
  const players = await upsertRoster(client, t, scope, values, totalsCtes(t, 'false'));
  // The winners a new, earlier claim displaces lose points: capture them before the upsert.
  const { rows: won } = await client.query<{ added: number; displaced: [string, string][] }>(
    `WITH claims AS (${earliestClaims(scope)}),
     displaced AS (SELECT w.hunt_id, w.player_id FROM ${t.winners} w JOIN claims c USING (hunt_id, treasure_id) WHERE ${isEarlier('c', 'w')}),
     up AS (INSERT INTO ${t.winners} AS w ${WINNER_COLUMNS} SELECT * FROM claims
            ON CONFLICT (hunt_id, treasure_id) DO UPDATE SET player_id = excluded.player_id, event_id = excluded.event_id,
              occurred_at = excluded.occurred_at, points = excluded.points WHERE ${isEarlier('excluded', 'w')}
            RETURNING xmax = 0 AS inserted)
     SELECT (SELECT count(*) FILTER (WHERE inserted) FROM up)::int AS added,
            (SELECT coalesce(json_agg(json_build_array(hunt_id, player_id)), '[]') FROM displaced) AS displaced`,
    values,
  );
  const { rows: credited } = await client.query<{ added: number }>(
    `WITH up AS (INSERT INTO ${t.credits} AS c ${CREDIT_COLUMNS} ${earliestCredits(scope)}
            ON CONFLICT (hunt_id, player_id, clue_id, kind) DO UPDATE SET event_id = excluded.event_id,
              occurred_at = excluded.occurred_at, points = excluded.points WHERE ${isEarlier('excluded', 'c')}
            RETURNING xmax = 0 AS inserted)
     SELECT count(*) FILTER (WHERE inserted)::int AS added FROM up`,
    values,
  );
  // Credits only move within their own player, so the players to re-total are the ones with
  // new events plus the displaced winners.
  const displaced = won[0]?.displaced ?? [];
  const i = values.length;
  await client.query(
    updateTotals(t, `SELECT e.hunt_id, e.player_id FROM events e WHERE ${where}
                     UNION SELECT * FROM unnest($${i + 1}::text[], $${i + 2}::text[])`),
    [...values, displaced.map(([h]) => h), displaced.map(([, p]) => p)],
  );
  if (t.stats) await client.query(addHuntStats(t.stats, scope, 'add'), values);
  return { events, rowsAdded: players + (won[0]?.added ?? 0) + (credited[0]?.added ?? 0) };
}

interface Targets {
  players: string;
  credits: string;
  winners: string;
  stats: string | undefined;
}

// Names come from code, but never go into SQL raw.
function quoteTargets(targets: ProjectionTargets): Targets {
  return {
    players: escapeIdentifier(targets.players),
    credits: escapeIdentifier(targets.clueCredits),
    winners: escapeIdentifier(targets.treasureWinners),
    stats: targets.huntStats === undefined ? undefined : escapeIdentifier(targets.huntStats),
  };
}

/** Which events a statement reads: `FROM ${relation} e WHERE ${where}` (`where` may use the caller's parameters). */
interface EventScope {
  relation: string;
  where: string;
}

/**
 * The recompute's copy of the events in scope: temporary, so private to the session and gone
 * at commit; named with its schema so no table of that name elsewhere on the search path is read.
 */
const SCOPE_COPY = 'pg_temp.recompute_scope';

/**
 * Copies the columns the rules read of the events in scope into SCOPE_COPY, and returns the
 * scope over the copy. The recompute reads its scope six times (credits, claims, roster,
 * names, membership, stats); over `events` each read was a scan of the whole table once a
 * chunk's hunts held more than a few percent of it, and a reprocess fill spent half its time
 * there (experiments §51). The copy is not WAL-logged. Past temp_buffers it is written to a
 * relation file of the session's own in the database's tablespace (or temp_tablespaces),
 * which temp_file_limit does not bound: about 160 bytes per event in scope (a reconcile
 * transaction's 2,000,000 events: about 320 MB; each reprocess lane copies its share of a
 * chunk), dropped at the end of the call.
 */
async function copyScope(client: pg.ClientBase, where: string, values: unknown[]): Promise<EventScope> {
  await client.query(
    `CREATE TEMP TABLE ${SCOPE_COPY} (hunt_id text COLLATE "C", player_id text COLLATE "C", type text,
       occurred_at timestamptz, event_id text COLLATE "C", payload jsonb) ON COMMIT DROP`,
  );
  await client.query(
    `INSERT INTO ${SCOPE_COPY} SELECT e.hunt_id, e.player_id, e.type, e.occurred_at, e.event_id, e.payload FROM events e WHERE ${where}`,
    values,
  );
  return { relation: SCOPE_COPY, where: 'true' };
}

const CREDIT_COLUMNS = '(hunt_id, player_id, clue_id, kind, event_id, occurred_at, points)';
const WINNER_COLUMNS = '(hunt_id, treasure_id, player_id, event_id, occurred_at, points)';

/** Earliest clue.found per (hunt, player, clue) scores +points; earliest hint.used costs its penalty. */
function earliestCredits(scope: EventScope): string {
  return `
    SELECT DISTINCT ON (hunt_id, player_id, clue_id, kind) hunt_id, player_id, clue_id, kind, event_id, occurred_at, points
      FROM (SELECT e.hunt_id, e.player_id, (e.payload->>'clueId') COLLATE "C" AS clue_id,
                   ${clueCreditKind('e.type')} AS kind, e.event_id, e.occurred_at,
                   ${clueCreditAmount('e')} AS points
              FROM ${scope.relation} e WHERE e.type IN ${CLUE_CREDIT_TYPES} AND ${scope.where}) c
     ORDER BY hunt_id, player_id, clue_id, kind, ${eventTimeOrder('earliest')}`;
}

/** One winner per (hunt, treasure): the earliest claim, ties to the smallest eventId. */
function earliestClaims(scope: EventScope): string {
  return `
    SELECT DISTINCT ON (hunt_id, treasure_id) hunt_id, treasure_id, player_id, event_id, occurred_at, points
      FROM (SELECT e.hunt_id, (e.payload->>'treasureId') COLLATE "C" AS treasure_id, e.player_id, e.event_id, e.occurred_at,
                   (e.payload->>'points')::int AS points
              FROM ${scope.relation} e WHERE e.type = 'treasure.claimed' AND ${scope.where}) c
     ORDER BY hunt_id, treasure_id, ${eventTimeOrder('earliest')}`;
}

/**
 * Upserts one row per (hunt, player) with events in scope. Display name: from the latest
 * player.joined that has one; active: unless the latest joined/left is a left (none at all:
 * active, an implicit join). An existing row's name or flag changes only for a later
 * (occurred_at, event_id), as on the hot path; its totals are left alone. New rows get
 * the totals of `totals`: CTEs `credited` (hunt_id, player_id, score, clues_found) and `won`
 * (hunt_id, player_id, score, won), per player. Returns the
 * number of rows inserted (`xmax = 0` marks an inserted, not an updated, row). `upsert`
 * false: the caller knows the target holds none of these players, and they go in with a
 * plain INSERT, which needs no unique index on the target.
 */
async function upsertRoster(client: pg.ClientBase, t: Targets, scope: EventScope, values: unknown[], totals: string, upsert = true): Promise<number> {
  const name = isLaterStamp('display_name_at', 'display_name_event');
  const active = isLaterStamp('active_at', 'active_event');
  const latestFirst = eventTimeOrder('latest', 'e.occurred_at', 'e.event_id');
  const { rows } = await client.query<{ added: number }>(
    `WITH roster AS (
       SELECT e.hunt_id, e.player_id FROM ${scope.relation} e WHERE ${scope.where} GROUP BY e.hunt_id, e.player_id
     ), named AS (
       SELECT DISTINCT ON (e.hunt_id, e.player_id) e.hunt_id, e.player_id, e.payload->>'displayName' AS display_name, e.occurred_at, e.event_id
         FROM ${scope.relation} e WHERE e.type = 'player.joined' AND e.payload->>'displayName' IS NOT NULL AND ${scope.where}
        ORDER BY e.hunt_id, e.player_id, ${latestFirst}
     ), membership AS (
       SELECT DISTINCT ON (e.hunt_id, e.player_id) e.hunt_id, e.player_id, e.type = 'player.joined' AS active, e.occurred_at, e.event_id
         FROM ${scope.relation} e WHERE e.type IN ('player.joined', 'player.left') AND ${scope.where}
        ORDER BY e.hunt_id, e.player_id, ${latestFirst}
     ), ${totals}, up AS (
       INSERT INTO ${t.players} AS p (hunt_id, player_id, score, clues_found, treasures_claimed,
         display_name, display_name_at, display_name_event, active, active_at, active_event)
       SELECT r.hunt_id, r.player_id, ${playerScore('c', 'w')}, coalesce(c.clues_found, 0), coalesce(w.won, 0),
              n.display_name, n.occurred_at, n.event_id, coalesce(m.active, true), m.occurred_at, m.event_id
         FROM roster r
         LEFT JOIN named n ON n.hunt_id = r.hunt_id AND n.player_id = r.player_id
         LEFT JOIN membership m ON m.hunt_id = r.hunt_id AND m.player_id = r.player_id
         LEFT JOIN credited c ON c.hunt_id = r.hunt_id AND c.player_id = r.player_id
         LEFT JOIN won w ON w.hunt_id = r.hunt_id AND w.player_id = r.player_id
       ${upsert ? `ON CONFLICT (hunt_id, player_id) DO UPDATE SET
         ${take('display_name', name)}, ${take('display_name_at', name)}, ${take('display_name_event', name)},
         ${take('active', active)}, ${take('active_at', active)}, ${take('active_event', active)}` : ''}
       RETURNING xmax = 0 AS inserted
     ) SELECT count(*) FILTER (WHERE inserted)::int AS added FROM up`,
    values,
  );
  return rows[0]?.added ?? 0;
}

/** `credited` and `won`: per-player sums over the credits and wins `scope` selects (as `x`). */
function totalsCtes(t: Targets, scope: string): string {
  return `credited AS (
       SELECT x.hunt_id, x.player_id, sum(${signedCreditPoints('x')}) AS score,
              count(*) FILTER (WHERE ${isClueFound('x')}) AS clues_found
         FROM ${t.credits} x WHERE ${scope} GROUP BY x.hunt_id, x.player_id
     ), won AS (
       SELECT x.hunt_id, x.player_id, sum(x.points) AS score, count(*) AS won
         FROM ${t.winners} x WHERE ${scope} GROUP BY x.hunt_id, x.player_id
     )`;
}

/** Re-totals the players `who` selects (distinct hunt_id, player_id) from the credits and wins. */
function updateTotals(t: Targets, who: string): string {
  return `
    WITH a AS (${who}), ${totalsCtes(t, '(x.hunt_id, x.player_id) IN (SELECT hunt_id, player_id FROM a)')}
    UPDATE ${t.players} p SET score = ${playerScore('c', 'w')}, clues_found = coalesce(c.clues_found, 0),
           treasures_claimed = coalesce(w.won, 0)
      FROM a
      LEFT JOIN credited c ON c.hunt_id = a.hunt_id AND c.player_id = a.player_id
      LEFT JOIN won w ON w.hunt_id = a.hunt_id AND w.player_id = a.player_id
     WHERE p.hunt_id = a.hunt_id AND p.player_id = a.player_id`;
}

/** events_applied counts stored events, as_of is the newest occurred_at (the read API's asOf). */
function addHuntStats(table: string, scope: EventScope, mode: 'replace' | 'add'): string {
  const set = mode === 'add'
    ? 'events_applied = h.events_applied + excluded.events_applied, as_of = greatest(h.as_of, excluded.as_of)'
    : 'events_applied = excluded.events_applied, as_of = excluded.as_of';
  return `
    INSERT INTO ${table} AS h (hunt_id, events_applied, as_of)
    SELECT e.hunt_id, count(*), max(e.occurred_at) FROM ${scope.relation} e WHERE ${scope.where} GROUP BY e.hunt_id
    ON CONFLICT (hunt_id) DO UPDATE SET ${set}, updated_at = now()`;
}
