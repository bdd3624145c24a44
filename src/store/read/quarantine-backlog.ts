/**
 * The quarantine backlog: records quarantined and not yet replayed, by reason. One module for
 * every reader of it: the read API's gauges, `hunt dlq list` and the data-quality check.
 */
import type pg from 'pg';
import { REJECT_REASONS } from '../../constants';

/**
 * Backlog per reason, each counted up to `cap` (a value of `cap` means "at least"): bounded
 * whatever the table holds, for a timer that runs every few seconds. `withinMinutes`: only
 * the records quarantined in the last that many minutes.
 */
export async function cappedBacklog(pool: pg.Pool, cap: number, withinMinutes?: number): Promise<Map<string, number>> {
  // Per reason, at most `cap` entries of the partial index quarantine_reason (reason,
  // quarantined_at) are read; with `withinMinutes`, a range of it (a condition that may or may
  // not apply would leave the generic plan to read every entry of the reason).
  const recent = withinMinutes === undefined ? '' : 'AND q.quarantined_at > now() - make_interval(mins => $3)';
  const { rows } = await pool.query<{ reason: string; n: number }>({
    name: withinMinutes === undefined ? 'monitoring-quarantine-backlog' : 'monitoring-quarantine-recent',
    text: `SELECT r.reason, (SELECT count(*)::int FROM (SELECT 1 FROM quarantine q
                                 WHERE q.reason = r.reason AND q.replayed_at IS NULL ${recent} LIMIT $2) capped) AS n
             FROM unnest($1::text[]) AS r(reason)`,
    values: withinMinutes === undefined ? [REJECT_REASONS, cap] : [REJECT_REASONS, cap, withinMinutes],
  });
  return new Map(rows.map((r) => [r.reason, r.n]));
}

export interface ReasonTally {
  reason: string;
  /** Not yet replayed. */
  waiting: number;
  replayed: number;
  /** When the oldest waiting record was quarantined; null when none waits. */
  oldest: Date | null;
}

/** Every reason that ever quarantined a record, in reason order, counted exactly. */
export async function quarantineByReason(pool: pg.Pool | pg.ClientBase): Promise<ReasonTally[]> {
  const { rows } = await pool.query<ReasonTally>(
    `SELECT reason, count(*) FILTER (WHERE replayed_at IS NULL)::int AS waiting, count(*) FILTER (WHERE replayed_at IS NOT NULL)::int AS replayed,
            min(quarantined_at) FILTER (WHERE replayed_at IS NULL) AS oldest
       FROM quarantine GROUP BY reason ORDER BY reason`,
  );
  return rows;
}

export interface WaitingRecord {
  id: number;
  reason: string;
  detail: string;
  source_topic: string;
  source_partition: number;
  source_offset: number;
  quarantined_at: Date;
  /** Its DLQ copy is not sent yet (src/ingest/dlq-relay.ts). */
  dlq_pending: boolean;
  /** Why the DLQ topic refused this record's copy, while it waits (set aside, tried again later). */
  dlq_refused: string | null;
}

/** The newest `limit` records waiting for a replay, of one reason or all (`reason` null). */
export async function latestWaiting(pool: pg.Pool, reason: string | null, limit: number): Promise<WaitingRecord[]> {
  const { rows } = await pool.query<WaitingRecord>(
    `SELECT id, reason, detail, source_topic, source_partition, source_offset, quarantined_at, dlq_pending, CASE WHEN dlq_pending THEN dlq_refused END AS dlq_refused FROM quarantine
      WHERE replayed_at IS NULL AND ($1::text IS NULL OR reason = $1) ORDER BY id DESC LIMIT $2`,
    [reason, limit],
  );
  return rows;
}
