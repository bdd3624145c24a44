/**
 * The rejects whose DLQ copies are still to be sent: quarantine rows the hot path committed
 * with `dlq_pending` (migration 010). The DLQ relay claims them in quarantine order for a
 * lease, sends them, then marks them sent. A relay that dies with a lease leaves its rows to
 * whoever claims them after it: a copy is sent at least once.
 */
import type pg from 'pg';
import type { RejectReason } from '../../events/validate';
import type { RejectedRecord } from './quarantine';

export interface PendingCopy extends RejectedRecord {
  id: number;
}

/**
 * Claims the oldest pending copies not under another relay's lease, up to `maxBytes` of
 * record bytes (at least one row, whatever its size) and `maxRows`, for `leaseMs`.
 */
export async function claimPendingCopies(pool: pg.Pool, options: { maxBytes: number; maxRows: number; leaseMs: number }): Promise<PendingCopy[]> {
  const { rows } = await pool.query<{
    id: string;
    source_topic: string;
    source_partition: number;
    source_offset: string;
    record_key: Buffer | null;
    record_value: Buffer | null;
    reason: RejectReason;
    detail: string;
  }>({
    name: 'claim-dlq-copies',
    text: `WITH candidates AS (
             SELECT id, coalesce(octet_length(record_key), 0) + coalesce(octet_length(record_value), 0) AS bytes
               FROM quarantine
              WHERE dlq_pending AND (dlq_claimed_until IS NULL OR dlq_claimed_until < now())
              ORDER BY id LIMIT $2
                FOR UPDATE SKIP LOCKED
           ), within AS (
             SELECT id FROM (SELECT id, bytes, sum(bytes) OVER (ORDER BY id) - bytes AS before FROM candidates) c
              WHERE before = 0 OR before + bytes <= $1
           )
           UPDATE quarantine q SET dlq_claimed_until = now() + make_interval(secs => $3::double precision / 1000)
             FROM within w WHERE q.id = w.id
           RETURNING q.id, q.source_topic, q.source_partition, q.source_offset::text, q.record_key, q.record_value, q.reason, q.detail`,
    values: [options.maxBytes, options.maxRows, options.leaseMs],
  });
  return rows
    .map((r) => ({
      id: Number(r.id),
      topic: r.source_topic,
      partition: r.source_partition,
      offset: r.source_offset,
      key: r.record_key,
      value: r.record_value,
      reason: r.reason,
      detail: r.detail,
    }))
    .sort((a, b) => a.id - b.id);
}

/** Marks copies sent: they are not claimed again. */
export async function markCopiesSent(pool: pg.Pool, ids: readonly number[]): Promise<void> {
  await pool.query({
    name: 'mark-dlq-copies-sent',
    text: 'UPDATE quarantine SET dlq_pending = false, dlq_claimed_until = NULL WHERE id = ANY($1::bigint[])',
    values: [ids],
  });
}

/** Gives claimed copies up (their send failed): the next pass, of any member, may take them at once. */
export async function releaseClaims(pool: pg.Pool, ids: readonly number[]): Promise<void> {
  await pool.query({
    name: 'release-dlq-claims',
    text: 'UPDATE quarantine SET dlq_claimed_until = NULL WHERE id = ANY($1::bigint[]) AND dlq_pending',
    values: [ids],
  });
}

/** How many copies wait, and how long the oldest has (0 when none). */
export async function pendingCopies(pool: pg.Pool): Promise<{ count: number; oldestSeconds: number }> {
  const { rows } = await pool.query<{ count: number; oldest: number | null }>(
    `SELECT count(*)::int AS count, extract(epoch FROM now() - min(quarantined_at))::float8 AS oldest FROM quarantine WHERE dlq_pending`,
  );
  return { count: rows[0]?.count ?? 0, oldestSeconds: Math.max(0, rows[0]?.oldest ?? 0) };
}
