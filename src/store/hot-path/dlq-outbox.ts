/**
 * The rejects whose DLQ copies are still to be sent: quarantine rows the hot path committed
 * with `dlq_pending` (migration 010), for its input topic. The DLQ relay claims them in
 * quarantine order for a lease, sends them, and marks each send's rows sent as it goes. A
 * relay that dies with a lease leaves its rows to whoever claims them after it: a copy is
 * sent at least once.
 */
import type pg from 'pg';
import type { RejectReason } from '../../events/validate';
import type { RejectedRecord } from './quarantine';

export interface PendingCopy extends RejectedRecord {
  id: number;
}

export interface Claim {
  copies: PendingCopy[];
  /** The lease's end as stored: it tells this claim from a later one of the same rows. */
  token: string;
  /**
   * The claim stopped at a limit, rows or bytes: more copies may be free to claim now. (A
   * claim its byte limit stopped, 8 copies of 1 MiB, once counted as not full.)
   */
  full: boolean;
}

export interface ClaimOptions {
  /** The input topic whose rejects this relay copies (a database may serve several). */
  topic: string;
  maxBytes: number;
  maxRows: number;
  leaseMs: number;
  /** Only rows up to this id (a stopping relay's last pass); all when undefined. */
  upToId?: number;
}

/**
 * Claims the oldest pending copies not under another relay's lease, up to `maxBytes` of
 * record bytes (at least one row, whatever its size) and `maxRows`, for `leaseMs`.
 */
export async function claimPendingCopies(pool: pg.Pool, options: ClaimOptions): Promise<Claim> {
  const { rows } = await pool.query<{
    id: string;
    source_topic: string;
    source_partition: number;
    source_offset: string;
    record_key: Buffer | null;
    record_value: Buffer | null;
    reason: RejectReason;
    detail: string;
    token: string;
    candidates: number;
  }>({
    name: 'claim-dlq-copies',
    text: `WITH candidates AS (
             SELECT id, coalesce(octet_length(record_key), 0) + coalesce(octet_length(record_value), 0) AS bytes
               FROM quarantine
              WHERE dlq_pending AND source_topic = $1 AND id <= $5
                AND (dlq_claimed_until IS NULL OR dlq_claimed_until < now())
              ORDER BY id LIMIT $3
                FOR UPDATE SKIP LOCKED
           ), within AS (
             SELECT id FROM (SELECT id, bytes, sum(bytes) OVER (ORDER BY id) - bytes AS before FROM candidates) c
              WHERE before = 0 OR before + bytes <= $2
           )
           -- A copy set aside before is tried again: its old refusal no longer describes it.
           UPDATE quarantine q SET dlq_claimed_until = now() + make_interval(secs => $4::double precision / 1000), dlq_refused = NULL
             FROM within w WHERE q.id = w.id
           RETURNING q.id, q.source_topic, q.source_partition, q.source_offset::text, q.record_key, q.record_value, q.reason, q.detail,
                     q.dlq_claimed_until::text AS token, (SELECT count(*) FROM candidates)::int AS candidates`,
    values: [options.topic, options.maxBytes, options.maxRows, options.leaseMs, options.upToId ?? Number.MAX_SAFE_INTEGER],
  });
  const copies = rows
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
  const candidates = rows[0]?.candidates ?? 0;
  return { copies, token: rows[0]?.token ?? '', full: candidates >= options.maxRows || copies.length < candidates };
}

/** Marks copies sent (whoever holds their lease now: a copy that went out is out). */
export async function markCopiesSent(pool: pg.Pool, ids: readonly number[]): Promise<void> {
  await pool.query({
    name: 'mark-dlq-copies-sent',
    text: 'UPDATE quarantine SET dlq_pending = false, dlq_claimed_until = NULL, dlq_sent_at = now() WHERE id = ANY($1::bigint[]) AND dlq_pending',
    values: [ids],
  });
}

/** How long a copy refused for the record itself is set aside: half its wait so far, within bounds. */
export interface SetAsideTime {
  minMs: number;
  maxMs: number;
}

/**
 * Sets aside copies of `claim` the DLQ topic refused for the records themselves: they stay
 * pending, with the refusal's `reason`, under a lease that keeps every relay's passes off
 * them (the copies behind them go on), and are tried again when it ends. The lease is half
 * the time each has waited since it was quarantined, at least `minMs` and at most `maxMs`:
 * a copy refused again and again is tried less and less often. With a fixed lease, a few
 * thousand refused copies came back, lowest ids first, before a sweep of them ended, and
 * from then on filled every claim: the copies behind them never went. Rows another relay
 * claimed since (this claim's lease ran out) are left to it. Returns the leases given, in
 * ms, one per row set aside.
 */
export async function setCopiesAside(pool: pg.Pool, claim: Claim, ids: readonly number[], reason: string, time: SetAsideTime): Promise<number[]> {
  const { rows } = await pool.query<{ lease_ms: number }>({
    name: 'set-dlq-copies-aside',
    text: `UPDATE quarantine SET dlq_refused = $2,
                  dlq_claimed_until = now() + greatest(make_interval(secs => $3::double precision / 1000),
                                                       least((now() - quarantined_at) / 2, make_interval(secs => $5::double precision / 1000)))
            WHERE id = ANY($1::bigint[]) AND dlq_pending AND dlq_claimed_until = $4::timestamptz
           RETURNING extract(epoch FROM dlq_claimed_until - now())::float8 * 1000 AS lease_ms`,
    values: [ids, reason, time.minMs, claim.token, time.maxMs],
  });
  return rows.map((r) => r.lease_ms);
}

/**
 * Gives up the rows of a claim that are still its own (their send failed), so the next
 * pass, of any member, may take them at once; rows another relay claimed after this claim's
 * lease ran out stay that relay's.
 */
export async function releaseClaim(pool: pg.Pool, claim: Claim): Promise<void> {
  await pool.query({
    name: 'release-dlq-claim',
    text: 'UPDATE quarantine SET dlq_claimed_until = NULL WHERE id = ANY($1::bigint[]) AND dlq_pending AND dlq_claimed_until = $2::timestamptz',
    values: [claim.copies.map((c) => c.id), claim.token],
  });
}

/** The newest pending copy's id for `topic` (0 when none): where a stopping relay's last pass ends. */
export async function newestPendingId(pool: pg.Pool, topic: string): Promise<number> {
  const { rows } = await pool.query<{ id: string | null }>({
    name: 'newest-pending-dlq-copy',
    text: 'SELECT max(id) AS id FROM quarantine WHERE dlq_pending AND source_topic = $1',
    values: [topic],
  });
  return Number(rows[0]?.id ?? 0);
}

export interface PendingCopies {
  count: number;
  /** Of `count`, the copies the DLQ topic refused for the records themselves (set aside). */
  refused: number;
  /** How long the oldest has waited (0 when none). */
  oldestSeconds: number;
}

/**
 * The copies that wait for `topic` (every topic's when null). `cap`: only the oldest `cap`
 * waiting copies are counted, the refused ones among them (a count of `cap` means "at
 * least"), for a timer: a DLQ refusing sends for hours while rejects came in made the relay's
 * gauges, read every 5 s in every member, count every waiting row. Oldest first, by the
 * index, so the refused copies are counted among the same rows whatever the plan (no index
 * has the refusal: counted apart, they were looked for through every waiting row again). The
 * oldest is the first by id (ids are drawn in quarantine order).
 */
export async function pendingCopies(pool: pg.Pool, topic: string | null, cap?: number): Promise<PendingCopies> {
  const { rows } = await pool.query<{ count: number; refused: number; oldest: number | null }>({
    name: 'pending-dlq-copies',
    text: `SELECT count(*)::int AS count, (count(*) FILTER (WHERE dlq_refused IS NOT NULL))::int AS refused,
                  (SELECT extract(epoch FROM now() - quarantined_at)::float8 FROM quarantine
                    WHERE dlq_pending AND ($1::text IS NULL OR source_topic = $1) ORDER BY id LIMIT 1) AS oldest
             FROM (SELECT dlq_refused FROM quarantine WHERE dlq_pending AND ($1::text IS NULL OR source_topic = $1) ORDER BY id LIMIT $2) oldest_first`,
    values: [topic, cap ?? null],
  });
  return { count: rows[0]?.count ?? 0, refused: rows[0]?.refused ?? 0, oldestSeconds: Math.max(0, rows[0]?.oldest ?? 0) };
}
