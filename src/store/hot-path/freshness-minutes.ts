/**
 * Per-minute freshness counts of the hot path (freshness_minutes): written by ingest
 * processes, read by `hunt slo`.
 */
import type pg from 'pg';

export interface FreshnessCount {
  /** Start of the minute (epoch ms, a whole minute) in which the events committed. */
  minuteMs: number;
  events: number;
  withinTarget: number;
}

export interface FreshnessWindow {
  /** Window length in ms, ending now (to the minute). */
  spanMs: number;
  events: number;
  withinTarget: number;
}

/** Adds counts to their minutes' rows: concurrent processes only ever increment. */
export async function addFreshnessCounts(pool: pg.Pool, targetMs: number, counts: readonly FreshnessCount[]): Promise<void> {
  if (counts.length === 0) return;
  await pool.query(
    `INSERT INTO freshness_minutes (minute, target_ms, events, within_target)
     SELECT to_timestamp(m / 1000.0), $1, e, w FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS c(m, e, w)
     ON CONFLICT (minute, target_ms) DO UPDATE
       SET events = freshness_minutes.events + excluded.events,
           within_target = freshness_minutes.within_target + excluded.within_target`,
    [targetMs, counts.map((c) => c.minuteMs), counts.map((c) => c.events), counts.map((c) => c.withinTarget)],
  );
}

/**
 * Totals over windows that end at `nowMs`: the minutes that started within the last
 * `spanMs`, the current (partial) minute included. So "the last hour" is 60 minute rows.
 */
export async function readFreshnessWindows(pool: pg.Pool, targetMs: number, spansMs: readonly number[], nowMs = Date.now()): Promise<FreshnessWindow[]> {
  const { rows } = await pool.query<{ span_ms: string; events: string; within_target: string }>(
    `SELECT s.span_ms, coalesce(sum(f.events), 0) AS events, coalesce(sum(f.within_target), 0) AS within_target
       FROM unnest($2::bigint[]) AS s(span_ms)
       LEFT JOIN freshness_minutes f
         ON f.target_ms = $1
        AND f.minute > to_timestamp($3 / 1000.0) - s.span_ms * interval '1 millisecond'
        AND f.minute <= to_timestamp($3 / 1000.0)
      GROUP BY s.span_ms`,
    [targetMs, spansMs, nowMs],
  );
  return spansMs.map((spanMs) => {
    const row = rows.find((r) => Number(r.span_ms) === spanMs);
    return { spanMs, events: Number(row?.events ?? 0), withinTarget: Number(row?.within_target ?? 0) };
  });
}

/** Targets other than `targetMs` that ingest processes counted against since `sinceMs`. */
export async function otherFreshnessTargets(pool: pg.Pool, targetMs: number, sinceMs: number): Promise<number[]> {
  const { rows } = await pool.query<{ target_ms: number }>(
    `SELECT DISTINCT target_ms FROM freshness_minutes WHERE minute > to_timestamp($1 / 1000.0) AND target_ms <> $2 ORDER BY target_ms`,
    [sinceMs, targetMs],
  );
  return rows.map((r) => r.target_ms);
}

/** Deletes minutes older than `beforeMs`; returns how many. */
export async function pruneFreshnessMinutes(pool: pg.Pool, beforeMs: number): Promise<number> {
  const { rowCount } = await pool.query('DELETE FROM freshness_minutes WHERE minute < to_timestamp($1 / 1000.0)', [beforeMs]);
  return rowCount ?? 0;
}
