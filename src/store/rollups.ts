/**
 * Rollup flushes: aggregate raw events stored since the watermark into per-minute and
 * per-hour windows. Each flush re-aggregates every window its new events touch from ALL raw
 * events of that window, so late events land in the right (old) window and nothing is
 * counted twice. Rows and watermark commit in one transaction.
 *
 * seq is assigned at insert but rows become visible at commit, so a row with a lower seq
 * can appear after a higher one. The watermark therefore stops short of rows stored in the
 * last `settleMs` (ingest transactions take milliseconds), so none is skipped.
 */
import type pg from 'pg';
import { withTransaction } from './transaction';

export const ROLLUP_JOB = 'rollupFlush';

export interface FlushResult {
  fromSeq: number;
  toSeq: number;
  events: number;
  minuteWindows: number;
  hourWindows: number;
}

const WINDOW_AGGREGATES = `count(*)::int, count(DISTINCT player_id)::int,
  count(*) FILTER (WHERE type = 'clue.found')::int,
  coalesce(sum((payload->>'points')::int) FILTER (WHERE type = 'clue.found'), 0),
  count(*) FILTER (WHERE type = 'hint.used')::int,
  coalesce(sum((payload->>'penalty')::int) FILTER (WHERE type = 'hint.used'), 0),
  count(*) FILTER (WHERE type = 'treasure.claimed')::int`;

const COLUMNS = ['events', 'players', 'clues_found', 'clue_points', 'hints_used', 'hint_penalties', 'treasure_claims'];

/** Upserts every window the seq range touches with its aggregate over all its raw events. */
function reaggregate(table: 'rollup_minute' | 'rollup_hour', unit: 'minute' | 'hour'): string {
  return `
    WITH touched AS (
      SELECT DISTINCT hunt_id, date_trunc('${unit}', occurred_at, 'UTC') AS window_start
        FROM events WHERE seq > $1 AND seq <= $2
    )
    INSERT INTO ${table} (hunt_id, window_start, ${COLUMNS.join(', ')})
    SELECT t.hunt_id, t.window_start, ${WINDOW_AGGREGATES}
      FROM touched t
      JOIN events e ON e.hunt_id = t.hunt_id
                   AND e.occurred_at >= t.window_start AND e.occurred_at < t.window_start + interval '1 ${unit}'
     GROUP BY t.hunt_id, t.window_start
    ON CONFLICT (hunt_id, window_start) DO UPDATE
      SET ${COLUMNS.map((c) => `${c} = excluded.${c}`).join(', ')}, updated_at = now()`;
}

/**
 * Flushes at most `maxEvents` (by seq) past the watermark in one transaction. Returns
 * undefined when there is nothing settled to flush.
 */
export async function flushRollupChunk(pool: pg.Pool, maxEvents: number, settleMs: number): Promise<FlushResult | undefined> {
  return withTransaction(pool, async (client) => {
    await client.query(`INSERT INTO job_watermarks (job) VALUES ($1) ON CONFLICT DO NOTHING`, [ROLLUP_JOB]);
    // Row lock: concurrent flushes take turns instead of aggregating the same range twice.
    const { rows } = await client.query<{ last_seq: number }>(`SELECT last_seq FROM job_watermarks WHERE job = $1 FOR UPDATE`, [ROLLUP_JOB]);
    const fromSeq = rows[0]?.last_seq ?? 0;
    const range = await client.query<{ to_seq: number | null; n: number }>(
      `SELECT max(seq) AS to_seq, count(*)::int AS n FROM (
         SELECT seq FROM events
          WHERE seq > $1 AND ingested_at < now() - make_interval(secs => $3::double precision / 1000)
          ORDER BY seq LIMIT $2) s`,
      [fromSeq, maxEvents, settleMs],
    );
    const toSeq = range.rows[0]?.to_seq;
    if (toSeq === null || toSeq === undefined) return undefined; // the watermark row stays: harmless, it would be created next time anyway
    const minute = await client.query(reaggregate('rollup_minute', 'minute'), [fromSeq, toSeq]);
    const hour = await client.query(reaggregate('rollup_hour', 'hour'), [fromSeq, toSeq]);
    await client.query(`UPDATE job_watermarks SET last_seq = $2, updated_at = now() WHERE job = $1`, [ROLLUP_JOB, toSeq]);
    return { fromSeq, toSeq, events: range.rows[0]?.n ?? 0, minuteWindows: minute.rowCount ?? 0, hourWindows: hour.rowCount ?? 0 };
  });
}
