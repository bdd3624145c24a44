/**
 * Rollup flushes: aggregate raw events stored since the watermark into per-minute and
 * per-hour windows. Each flush adds its new events to the minute windows they fall in (a
 * minute's distinct players counted as they are first noted in rollup_minute_players), then
 * rewrites every touched hour from its minutes (and its noted players), so late events land
 * in the right (old) window and nothing is counted twice. Rows, noted players and watermark
 * commit in one transaction, so a minute row sums exactly the events the watermark covers.
 *
 * seq is assigned at insert but rows become visible at commit, so a row with a lower seq
 * can appear after a higher one. The watermark therefore moves only to a settled bound
 * (settled-seq.ts: no transaction still inserting at or below it), so none is skipped: a
 * skipped event would be missing from its minute for good, since no later flush rereads it.
 */
import type pg from 'pg';
import { withBoundedTransaction, type StatementBounds } from '../bounded-transaction';
import { settledBound, type SettledBound } from './settled-seq';

export const ROLLUP_JOB = 'rollupFlush';

export interface FlushResult {
  fromSeq: number;
  toSeq: number;
  events: number;
  minuteWindows: number;
  hourWindows: number;
}

export const ROLLUP_COLUMNS = ['events', 'players', 'clues_found', 'clue_points', 'hints_used', 'hint_penalties', 'treasure_claims'] as const;
type RollupColumn = (typeof ROLLUP_COLUMNS)[number];

/**
 * Each column of a window's row, aggregated from its raw events (alias `e`): the one
 * definition that flushes and repairs write and the data-quality check compares against.
 * All but `players` add up across events.
 */
const AGGREGATES: Record<RollupColumn, string> = {
  events: 'count(*)',
  players: 'count(DISTINCT e.player_id)',
  clues_found: "count(*) FILTER (WHERE e.type = 'clue.found')",
  clue_points: "coalesce(sum((e.payload->>'points')::int) FILTER (WHERE e.type = 'clue.found'), 0)",
  hints_used: "count(*) FILTER (WHERE e.type = 'hint.used')",
  hint_penalties: "coalesce(sum((e.payload->>'penalty')::int) FILTER (WHERE e.type = 'hint.used'), 0)",
  treasure_claims: "count(*) FILTER (WHERE e.type = 'treasure.claimed')",
};

/** Every column, in ROLLUP_COLUMNS' order. */
const WINDOW_AGGREGATES = ROLLUP_COLUMNS.map((c) => `${AGGREGATES[c]} AS ${c}`).join(',\n  ');

export type RollupUnit = 'minute' | 'hour';
export const ROLLUP_TABLES: Record<RollupUnit, string> = { minute: 'rollup_minute', hour: 'rollup_hour' };
/** Who had events in each window (migrations 011 and 020): distinct players do not add up. */
const PLAYER_TABLES: Record<RollupUnit, string> = { minute: 'rollup_minute_players', hour: 'rollup_hour_players' };

/**
 * Upserts the windows `windowsSql` selects (hunt_id, window_start) with their aggregate over
 * their raw events (those `eventsCondition` keeps, alias `e`); a window with none is left
 * alone. `windowsSql` and `eventsCondition` may use the statement's parameters.
 */
export function upsertWindowsSql(unit: RollupUnit, windowsSql: string, eventsCondition = 'true'): string {
  return `
    WITH touched AS (${windowsSql})
    INSERT INTO ${ROLLUP_TABLES[unit]} (hunt_id, window_start, ${ROLLUP_COLUMNS.join(', ')})
    SELECT t.hunt_id, t.window_start, ${WINDOW_AGGREGATES}
      FROM touched t
      JOIN events e ON e.hunt_id = t.hunt_id
                   AND e.occurred_at >= t.window_start AND e.occurred_at < t.window_start + interval '1 ${unit}'
     WHERE ${eventsCondition}
     GROUP BY t.hunt_id, t.window_start
    ON CONFLICT (hunt_id, window_start) DO UPDATE
      SET ${ROLLUP_COLUMNS.map((c) => `${c} = excluded.${c}`).join(', ')}, updated_at = now()`;
}

/** The windows of `unit` the seq range ($1, $2] touches. */
function touchedWindowsSql(unit: RollupUnit): string {
  return `SELECT DISTINCT hunt_id, date_trunc('${unit}', occurred_at, 'UTC') AS window_start FROM events WHERE seq > $1 AND seq <= $2`;
}

/**
 * Adds the events of the seq range ($1, $2] to the minute windows they fall in, and notes
 * their players there: a window's players grow by those noted for the first time. The cost
 * follows the range's own events, not what their minutes hold: re-aggregating each touched
 * minute from all its raw events, as flushes did before migration 020, cost about a second
 * per million events in the minute, chunk after chunk (bench/rollup-minute-cost.ts), and a
 * minute of tens of millions failed every chunk.
 */
const ADD_TO_MINUTES = `
  WITH noted AS (
    INSERT INTO rollup_minute_players (hunt_id, window_start, player_id)
    SELECT DISTINCT hunt_id, date_trunc('minute', occurred_at, 'UTC'), player_id FROM events WHERE seq > $1 AND seq <= $2
    ON CONFLICT DO NOTHING
    RETURNING hunt_id, window_start),
  new_players AS (SELECT hunt_id, window_start, count(*) AS players FROM noted GROUP BY 1, 2),
  added AS (
    SELECT e.hunt_id, date_trunc('minute', e.occurred_at, 'UTC') AS window_start,
           ${ROLLUP_COLUMNS.filter((c) => c !== 'players').map((c) => `${AGGREGATES[c]} AS ${c}`).join(', ')}
      FROM events e WHERE e.seq > $1 AND e.seq <= $2
     GROUP BY 1, 2)
  INSERT INTO rollup_minute (hunt_id, window_start, ${ROLLUP_COLUMNS.join(', ')})
  SELECT a.hunt_id, a.window_start, ${ROLLUP_COLUMNS.map((c) => (c === 'players' ? 'coalesce(n.players, 0)' : `a.${c}`)).join(', ')}
    FROM added a LEFT JOIN new_players n ON n.hunt_id = a.hunt_id AND n.window_start = a.window_start
  ON CONFLICT (hunt_id, window_start) DO UPDATE
    SET ${ROLLUP_COLUMNS.map((c) => `${c} = rollup_minute.${c} + excluded.${c}`).join(', ')}, updated_at = now()`;

/** Notes the players of the seq range ($1, $2] in their hunt-hours (migration 011). */
const NOTE_HOUR_PLAYERS = `
  INSERT INTO rollup_hour_players (hunt_id, window_start, player_id)
  SELECT DISTINCT hunt_id, date_trunc('hour', occurred_at, 'UTC'), player_id FROM events WHERE seq > $1 AND seq <= $2
  ON CONFLICT DO NOTHING`;

/**
 * Rewrites every hour window the seq range ($1, $2] touches from its minute rows (written
 * just before, in the same transaction) and its noted players: the minutes partition the
 * hour, so each column equals WINDOW_AGGREGATES over the hour's raw events the watermark
 * covers, at a cost that follows the hour's minutes and players, not its events (the
 * data-quality check still compares the rows with the raw events).
 */
const REAGGREGATE_HOURS = `
  WITH touched AS (${touchedWindowsSql('hour')})
  INSERT INTO rollup_hour (hunt_id, window_start, ${ROLLUP_COLUMNS.join(', ')})
  SELECT t.hunt_id, t.window_start, sum(m.events),
         (SELECT count(*) FROM rollup_hour_players p WHERE p.hunt_id = t.hunt_id AND p.window_start = t.window_start),
         sum(m.clues_found), sum(m.clue_points), sum(m.hints_used), sum(m.hint_penalties), sum(m.treasure_claims)
    FROM touched t
    JOIN rollup_minute m ON m.hunt_id = t.hunt_id AND m.window_start >= t.window_start AND m.window_start < t.window_start + interval '1 hour'
   GROUP BY t.hunt_id, t.window_start
  ON CONFLICT (hunt_id, window_start) DO UPDATE
    SET ${ROLLUP_COLUMNS.map((c) => `${c} = excluded.${c}`).join(', ')}, updated_at = now()`;

/**
 * Windows whose stored row is not what the flushes so far should have written: a column
 * differs, the row is missing for flushed events, or the row has no events at all. Compared
 * with the events the flush watermark covers, which is what every row holds (a flush rewrites
 * each window it touches in the transaction that moves the watermark): a window that also
 * holds events past it is checked all the same. Left out, a wrong one was found by no check
 * while any of its events waited (one a client with a stuck clock keeps filling, never), and
 * a repair found its window skipped it, reporting nothing left to fix.
 * Columns: hunt_id, window_start, unit, problem ('differs' | 'missing' | 'no events').
 */
export function staleWindowsSql(unit: RollupUnit): string {
  const cols = (alias: string) => ROLLUP_COLUMNS.map((c) => `${alias}.${c}`).join(', ');
  return `
    WITH mark AS (SELECT coalesce((SELECT last_seq FROM job_watermarks WHERE job = '${ROLLUP_JOB}'), 0) AS last_seq),
    fresh AS (
      SELECT e.hunt_id, date_trunc('${unit}', e.occurred_at, 'UTC') AS window_start, ${WINDOW_AGGREGATES}
        FROM events e WHERE e.seq <= (SELECT last_seq FROM mark) GROUP BY 1, 2)
    SELECT coalesce(f.hunt_id, r.hunt_id) AS hunt_id, coalesce(f.window_start, r.window_start) AS window_start, '${unit}' AS unit,
           CASE WHEN r.hunt_id IS NULL THEN 'missing' WHEN f.hunt_id IS NULL THEN 'no events' ELSE 'differs' END AS problem
      FROM fresh f FULL JOIN ${ROLLUP_TABLES[unit]} r ON r.hunt_id = f.hunt_id AND r.window_start = f.window_start
     WHERE f.hunt_id IS NULL OR r.hunt_id IS NULL OR (${cols('f')}) IS DISTINCT FROM (${cols('r')})`;
}

/**
 * Rewrites the stale windows of `unit` (staleWindowsSql) from raw events; returns how many.
 * Finding them reads every event, so it runs without the watermark's lock, and flushes go on
 * meanwhile. Writing them takes turns with flushes on that row, and counts only the events
 * the watermark covers: a flush adds the events past it to their minutes later, so a window
 * written with one of them would count it twice, and one written before a flush added a late
 * event would lose it. Under the lock each window is aggregated afresh, so one a flush
 * touched meanwhile is right too; the lock is held for the windows found, not for the table.
 */
export async function repairStaleWindows(pool: pg.Pool, unit: RollupUnit, bounds?: StatementBounds): Promise<number> {
  return withBoundedTransaction(pool, bounds, async (client) => {
    await client.query(`CREATE TEMP TABLE stale_windows ON COMMIT DROP AS ${staleWindowsSql(unit)}`);
    const watermark = await lockWatermark(client);
    const inWindow = `e.hunt_id = s.hunt_id AND e.occurred_at >= s.window_start AND e.occurred_at < s.window_start + interval '1 ${unit}' AND e.seq <= $1`;
    // The players later flushes count the window's from, noted afresh.
    await client.query(`DELETE FROM ${PLAYER_TABLES[unit]} p USING stale_windows s WHERE p.hunt_id = s.hunt_id AND p.window_start = s.window_start`);
    await client.query(
      `INSERT INTO ${PLAYER_TABLES[unit]} (hunt_id, window_start, player_id)
       SELECT DISTINCT e.hunt_id, s.window_start, e.player_id FROM stale_windows s JOIN events e ON ${inWindow}`,
      [watermark],
    );
    const upserted = await client.query(upsertWindowsSql(unit, 'SELECT hunt_id, window_start FROM stale_windows', 'e.seq <= $1'), [watermark]);
    // A window without such events has no row: the flush that takes its events makes one.
    const deleted = await client.query(
      `DELETE FROM ${ROLLUP_TABLES[unit]} r USING stale_windows s
        WHERE r.hunt_id = s.hunt_id AND r.window_start = s.window_start AND NOT EXISTS (SELECT 1 FROM events e WHERE ${inWindow})`,
      [watermark],
    );
    return (upserted.rowCount ?? 0) + (deleted.rowCount ?? 0);
  });
}

/** Locks the flush watermark's row (made if missing) for the transaction; returns its seq. */
async function lockWatermark(client: pg.ClientBase): Promise<number> {
  await client.query(`INSERT INTO job_watermarks (job) VALUES ($1) ON CONFLICT DO NOTHING`, [ROLLUP_JOB]);
  const { rows } = await client.query<{ last_seq: number }>(`SELECT last_seq FROM job_watermarks WHERE job = $1 FOR UPDATE`, [ROLLUP_JOB]);
  return Number(rows[0]?.last_seq ?? 0);
}

/**
 * Flushes at most `maxEvents` (by seq) past the watermark, and none past `untilSeq` (the
 * run's target), in one transaction. Returns undefined when there is nothing settled to
 * flush up to `untilSeq`. `bounds` ties the transaction to the job step running it
 * (bounded-transaction.ts).
 */
export async function flushRollupChunk(
  pool: pg.Pool,
  maxEvents: number,
  settleMs: number,
  bounds?: StatementBounds,
  untilSeq = Number.MAX_SAFE_INTEGER,
): Promise<FlushResult | undefined> {
  return withBoundedTransaction(pool, bounds, async (client) => {
    // Concurrent flushes (and repairs) take turns instead of aggregating the same range twice.
    const fromSeq = await lockWatermark(client);
    // Throws, naming them, while transactions inserting events outlast the wait: the step is retried.
    const bound = await settledBoundUpTo(client, fromSeq, untilSeq, settleMs, maxEvents);
    if (bound.events === 0) {
      // Nothing to flush is a pass too: its time is what hunt_batch_watermark_age_seconds
      // reads, so a quiet hour does not look like a hung job.
      await client.query(`UPDATE job_watermarks SET updated_at = now() WHERE job = $1`, [ROLLUP_JOB]);
      return undefined;
    }
    const { toSeq } = bound;
    const minute = await client.query(ADD_TO_MINUTES, [fromSeq, toSeq]);
    await client.query(NOTE_HOUR_PLAYERS, [fromSeq, toSeq]);
    const hour = await client.query(REAGGREGATE_HOURS, [fromSeq, toSeq]);
    await client.query(`UPDATE job_watermarks SET last_seq = $2, updated_at = now() WHERE job = $1`, [ROLLUP_JOB, toSeq]);
    return { fromSeq, toSeq, events: bound.events, minuteWindows: minute.rowCount ?? 0, hourWindows: hour.rowCount ?? 0 };
  });
}

/** The settled bound (settled-seq.ts) past `fromSeq`, cut at `untilSeq`. */
async function settledBoundUpTo(client: pg.ClientBase, fromSeq: number, untilSeq: number, settleMs: number, maxEvents: number): Promise<SettledBound> {
  if (fromSeq >= untilSeq) return { toSeq: fromSeq, events: 0 };
  const bound = await settledBound(client, fromSeq, settleMs, maxEvents);
  if (bound.toSeq <= untilSeq) return bound;
  // Every seq at or below the settled bound is committed or never will be, so every seq at
  // or below untilSeq too: the cut is as safe, and only its events need counting.
  const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE seq > $1 AND seq <= $2', [fromSeq, untilSeq]);
  return { toSeq: untilSeq, events: rows[0]?.n ?? 0 };
}
