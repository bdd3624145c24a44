/**
 * Applies accepted events to the raw store and the projections, inside the caller's
 * transaction. The one implementation of "store and score" shared by the hot path, backfills
 * and DLQ replays.
 *
 * Exactly-once effect: events are inserted `ON CONFLICT (event_id) DO NOTHING`, and only the
 * rows really inserted produce projection deltas, so a redelivered or replayed event changes
 * nothing.
 *
 * Two statements per batch, whatever its size: the fence lock, then ONE statement of
 * data-modifying CTEs that stores the events and scores the ones really inserted (credits,
 * wins, one pre-aggregated upsert per player, hunt stats), all set-based in Postgres. The
 * batch travels as one JSON parameter of flat rows (event-rows.ts): JSON.stringify is native,
 * Postgres parses it once, and nothing comes back to the client between the steps.
 *
 * Scoring here is derived from the reference fold (src/rules/reference.ts, the rules'
 * definition) with the rules' SQL fragments (src/rules/sql.ts), and property-tested against
 * it on streams in event-time order. It is incremental, in arrival order (provisional, see
 * CONTRACT.md): the first clue.found / hint.used / treasure.claimed to arrive for its key is
 * credited (credits and wins are inserted in arrival order, and a conflict within the
 * statement keeps the first). Display name and active flag compare event time, which is cheap to get
 * exactly right. Reconciliation repairs the rest to the final answer.
 *
 * `plainInsert`: for a caller that has sifted out the rows whose eventId repeats an earlier
 * row or is known stored (`leaveOut`, the hot path: src/ingest/known-events.ts) and believes
 * the rest are new. They then go in with a plain INSERT: ON CONFLICT first looks each eventId
 * up in the primary key and then inserts it (two descents of the biggest index); a plain
 * INSERT checks uniqueness in its one descent (experiments §60). A stored eventId then fails
 * the statement with a unique violation on events_pkey (isStoredEventConflict) instead of
 * being skipped, and the caller commits the batch again the ordinary way. Exactly-once rests
 * on the index either way.
 */
import type pg from 'pg';
import type { EventInstant, HuntEvent } from '../../events/schema';
import { rowCount, rowsOf, type EventRows } from './event-rows';
import { NOTIFY_HUNTS_OF } from '../hunt-changes';
import { nameIfSmall } from './statement-name';
import { SqlState, sqlStateOf } from '../sql-state';
import {
  CLUE_CREDIT_TYPES,
  clueCreditKind,
  eventTimeOrder,
  isClueFound,
  isLaterStamp,
  signedCreditPoints,
  takeIfLater as take,
} from '../../rules/sql';

export interface AcceptedEvent {
  event: HuntEvent;
  instant: EventInstant;
  /** Provenance for the raw store, e.g. `kafka:hunt.events:3:1200`, `backfill:<job>`. */
  source: string;
}

export interface ApplyResult {
  /** Events stored for the first time (and scored). */
  inserted: number;
  /** Events whose eventId was already stored (or repeated within the batch): no effect. */
  duplicates: number;
  /** The hunts the batch touched, sorted. */
  huntIds: string[];
}

/**
 * Stores and scores `rows` (see event-rows.ts) in the caller's transaction. Locks each
 * touched hunt's fence row first (sorted, so concurrent writers cannot deadlock), which
 * serializes with repairs. A row whose eventId is already stored, or repeats an earlier row
 * of the batch, has no effect.
 */
export async function applyEventRows(client: pg.ClientBase, rows: EventRows, options: { fenced?: boolean; plainInsert?: PlainInsert } = {}): Promise<ApplyResult> {
  const count = rowCount(rows);
  if (count === 0) return { inserted: 0, duplicates: 0, huntIds: [] };
  const huntIds = [...rows.huntIds].sort();
  await stageRows(client, rows);
  if (!options.fenced) await lockHuntFences(client, huntIds);
  const inserted = await storeAndScoreStaged(client, options);
  return { inserted, duplicates: count - inserted, huntIds };
}

/**
 * Sends the rows to Postgres ahead of the fences, into a setting of the transaction that
 * store-and-score reads: while a big micro-batch crosses the link (seconds on a slow one),
 * the session holds no hunt's fence. Sent after the fence lock, a micro-batch whose client
 * froze or vanished halfway held its hunts' fences as long as Postgres waited for the rest
 * (no timeout ends a session reading a statement), and every writer of those hunts with it.
 * Issued at once: on a pipelining connection, write it first. Selects no column: set_config
 * returns the value it set, and the batch came back to the consumer whole (experiments §48).
 */
export function stageRows(client: pg.ClientBase, rows: EventRows): Promise<unknown> {
  return client.query({ ...nameIfSmall('stage-micro-batch', rows.json.length), text: `SELECT FROM set_config('${STAGED_ROWS}', $1, true)`, values: [rows.json] });
}

/**
 * The store-and-score statement over the staged rows (stageRows), issued at once (the caller
 * holds the fences, or has written the fence lock ahead of it on a pipelining connection);
 * resolves to the number of events inserted.
 */
export async function storeAndScoreStaged(client: pg.ClientBase, options: { plainInsert?: PlainInsert } = {}): Promise<number> {
  const { plainInsert } = options;
  const statement = plainInsert
    ? { name: 'store-new-and-score', text: STORE_NEW_AND_SCORE, values: [leaveOutMask(plainInsert.leaveOut)] }
    : { name: 'store-and-score', text: STORE_AND_SCORE };
  const { rows: result } = await client.query<{ inserted: number }>(statement);
  return result[0]?.inserted ?? 0;
}

/** The rows, by index, a plain insert leaves out: each repeats an eventId of an earlier row, or of a stored event. */
export interface PlainInsert {
  leaveOut: readonly number[];
}

/**
 * The rows left out as a Postgres boolean array, `t` at each (row i at subscript i + 1, as
 * the statement numbers rows from 1); rows past its end are kept. A mask, not the list: the
 * statement looks each row up in it at once, where `<> ALL (list)` would compare each row with
 * the whole list, rows times repeats (a big batch of nothing but repeats would run out of time).
 */
export function leaveOutMask(leaveOut: readonly number[]): string {
  let length = 0;
  for (const row of leaveOut) length = Math.max(length, row + 1);
  const mask = new Array<string>(length).fill('f');
  for (const row of leaveOut) mask[row] = 't';
  return `{${mask.join(',')}}`;
}

/** True when a plain insert (`plainInsert`) met an eventId already stored, or one the batch repeats. */
export function isStoredEventConflict(err: unknown): boolean {
  return sqlStateOf(err) === SqlState.uniqueViolation && (err as { constraint?: unknown }).constraint === 'events_pkey';
}

/** The transaction's setting holding the staged rows (a custom setting: any role may set one). */
const STAGED_ROWS = 'hunt.micro_batch';

/**
 * Locks the fence rows of `huntIds` (creating those missing) for the rest of the caller's
 * transaction. `fenced: true` tells applyEventRows the caller holds them already.
 */
export async function lockHuntFences(client: pg.ClientBase, huntIds: readonly string[]): Promise<void> {
  // Byte order, as reconcile locks them (hunt_id is COLLATE "C"): on a database whose
  // default collation is not C, `ORDER BY h` alone took them in another order, and the two
  // deadlocked (Postgres broke it after deadlock_timeout, and both retried).
  await client.query({
    ...nameIfSmall('hunt-fence-lock', huntIds.reduce((chars, id) => chars + id.length + 3, 0)),
    text: `INSERT INTO hunts (hunt_id) SELECT h FROM unnest($1::text[]) AS h ORDER BY h COLLATE "C"
           ON CONFLICT (hunt_id) DO UPDATE SET updated_at = now()`,
    values: [huntIds],
  });
}

/** applyEventRows for events at hand as objects (replays, tests, benchmarks). */
export async function applyEvents(client: pg.ClientBase, events: readonly AcceptedEvent[]): Promise<ApplyResult> {
  return applyEventRows(client, rowsOf(events));
}

const NAME_IS_LATER = isLaterStamp('display_name_at', 'display_name_event');
const ACTIVE_IS_LATER = isLaterStamp('active_at', 'active_event');
// `new` takes event_id from JSON text, without the table's byte-order collation.
const LATEST_FIRST = eventTimeOrder('latest', 'occurred_at', 'event_id COLLATE "C"');

/**
 * Store-and-score with ON CONFLICT on the eventId, or (plainInsert) without, leaving out the
 * rows that the boolean array $1 marks (leaveOutMask).
 */
const storeAndScoreSql = (skipStored: boolean) => `
  WITH input AS (
    SELECT r.e AS event_id, r.h AS hunt_id, r.p AS player_id, r.t AS type, r.o AS occurred_at,
           r.s AS subject_id, r.n AS points, r.d AS display_name, r.m AS team_id, r.src AS source, r.arrival,
           -- Numbered here, in arrival order, though they go in below in eventId order: seq
           -- keeps following the stream within a batch as across batches.
           nextval('events_seq_seq'::regclass) AS seq
      -- The rows come joined by ','; Postgres adds the brackets, so the client sends the string it has.
      FROM ROWS FROM (json_to_recordset(('[' || current_setting('${STAGED_ROWS}') || ']')::json)
                        AS (e text, h text, p text, t text, o timestamptz, s text, n int, d text, m text, src text))
           WITH ORDINALITY AS r(e, h, p, t, o, s, n, d, m, src, arrival)
     ${skipStored ? '' : 'WHERE ($1::bool[])[r.arrival] IS NOT TRUE'}
  ), ins AS (
    INSERT INTO events (seq, event_id, hunt_id, player_id, type, occurred_at, payload, source)
    SELECT seq, event_id, hunt_id, player_id, type, occurred_at,
           CASE type WHEN 'clue.found' THEN jsonb_build_object('clueId', subject_id, 'points', points)
                     WHEN 'hint.used' THEN jsonb_build_object('clueId', subject_id, 'penalty', points)
                     WHEN 'treasure.claimed' THEN jsonb_build_object('treasureId', subject_id, 'points', points)
                     WHEN 'player.joined' THEN jsonb_strip_nulls(jsonb_build_object('displayName', display_name, 'teamId', team_id))
                     ELSE '{}'::jsonb END,
           source
      -- In eventId order, whatever the arrival: every commit takes the events' primary key in
      -- the same order, so two whose batches hold the same ids crossed (ids reused across
      -- hunts, on two partitions) wait for each other instead of deadlocking. A repeat within
      -- the batch comes after its first arrival, which is the one stored.
      FROM input ORDER BY event_id COLLATE "C", arrival
    ${skipStored ? 'ON CONFLICT (event_id) DO NOTHING' : ''}
    RETURNING event_id
  ), new AS (
    ${
      skipStored
        ? `-- A repeated eventId in the batch: the first arrival is the one inserted, and the one scored.
    SELECT DISTINCT ON (i.event_id) i.* FROM input i JOIN ins USING (event_id) ORDER BY i.event_id, i.arrival`
        : `-- A plain insert stores every row or fails the whole statement: the rows are the ones
    -- inserted, with no join back to what it returns (a hash and a sort of the batch, §97).
    SELECT * FROM input`
    }
  ), credits AS (
    INSERT INTO clue_credits (hunt_id, player_id, clue_id, kind, event_id, occurred_at, points)
    SELECT hunt_id, player_id, subject_id, ${clueCreditKind('type')}, event_id, occurred_at, points
      FROM new WHERE type IN ${CLUE_CREDIT_TYPES} ORDER BY arrival
    ON CONFLICT (hunt_id, player_id, clue_id, kind) DO NOTHING
    RETURNING hunt_id, player_id, kind, points
  ), wins AS (
    INSERT INTO treasure_winners (hunt_id, treasure_id, player_id, event_id, occurred_at, points)
    SELECT hunt_id, subject_id, player_id, event_id, occurred_at, points FROM new WHERE type = 'treasure.claimed' ORDER BY arrival
    ON CONFLICT (hunt_id, treasure_id) DO NOTHING
    RETURNING hunt_id, player_id, points
  ), deltas AS (
    -- Every inserted event registers its player, even one that scores nothing.
    SELECT hunt_id, player_id, sum(score)::bigint AS score, sum(clues)::int AS clues, sum(won)::int AS won FROM (
      SELECT hunt_id, player_id, 0 AS score, 0 AS clues, 0 AS won FROM new
      UNION ALL SELECT hunt_id, player_id, ${signedCreditPoints()}, (${isClueFound()})::int, 0 FROM credits
      UNION ALL SELECT hunt_id, player_id, points, 0, 1 FROM wins
    ) d GROUP BY hunt_id, player_id
  ), named AS (
    SELECT DISTINCT ON (hunt_id, player_id) hunt_id, player_id, display_name, occurred_at, event_id COLLATE "C" AS event_id
      FROM new WHERE type = 'player.joined' AND display_name IS NOT NULL
     ORDER BY hunt_id, player_id, ${LATEST_FIRST}
  ), membership AS (
    SELECT DISTINCT ON (hunt_id, player_id) hunt_id, player_id, type = 'player.joined' AS active, occurred_at, event_id COLLATE "C" AS event_id
      FROM new WHERE type IN ('player.joined', 'player.left')
     ORDER BY hunt_id, player_id, ${LATEST_FIRST}
  ), changes AS (
    SELECT d.hunt_id, d.player_id, d.score, d.clues, d.won, n.display_name, n.occurred_at AS named_at, n.event_id AS named_event,
           m.active, m.occurred_at AS active_at, m.event_id AS active_event,
           d.score <> 0 OR d.clues <> 0 OR d.won <> 0 OR n.player_id IS NOT NULL OR m.player_id IS NOT NULL AS changes_player
      FROM deltas d LEFT JOIN named n USING (hunt_id, player_id) LEFT JOIN membership m USING (hunt_id, player_id)
  ), players AS (
    INSERT INTO player_scores AS p (hunt_id, player_id, score, clues_found, treasures_claimed,
           display_name, display_name_at, display_name_event, active, active_at, active_event)
    SELECT hunt_id, player_id, score, clues, won, display_name, named_at, named_event, coalesce(active, true), active_at, active_event
      FROM changes WHERE changes_player
    ON CONFLICT (hunt_id, player_id) DO UPDATE SET
      score = p.score + excluded.score,
      clues_found = p.clues_found + excluded.clues_found,
      treasures_claimed = p.treasures_claimed + excluded.treasures_claimed,
      ${take('display_name', NAME_IS_LATER)}, ${take('display_name_event', NAME_IS_LATER)}, ${take('display_name_at', NAME_IS_LATER)},
      ${take('active', ACTIVE_IS_LATER)}, ${take('active_event', ACTIVE_IS_LATER)}, ${take('active_at', ACTIVE_IS_LATER)}
  ), registered AS (
    -- A player whose events here change nothing (a treasure already won, a clue already
    -- credited) is only registered if new: rewriting an unchanged row is a new row version and
    -- an entry in both of its indexes, about a quarter of the upserts late in a game (experiments §97).
    INSERT INTO player_scores (hunt_id, player_id, score, clues_found, treasures_claimed, active)
    SELECT hunt_id, player_id, 0, 0, 0, true FROM changes WHERE NOT changes_player
    ON CONFLICT (hunt_id, player_id) DO NOTHING
  ), stats AS (
    UPDATE hunts h SET events_applied = h.events_applied + s.n, as_of = GREATEST(h.as_of, s.newest), updated_at = now()
      FROM (SELECT hunt_id, count(*) AS n, max(occurred_at) AS newest FROM new GROUP BY hunt_id) s
     WHERE h.hunt_id = s.hunt_id
  )
  -- Live leaderboards learn of the change when (and if) this transaction commits.
  SELECT count(*)::int AS inserted, ${NOTIFY_HUNTS_OF('new')} AS notified FROM ins`;

const STORE_AND_SCORE = storeAndScoreSql(true);
const STORE_NEW_AND_SCORE = storeAndScoreSql(false);
