/**
 * Replays quarantined records: re-validates each with today's rules and clock, and stores
 * and scores the ones now valid through the hot path's applyEvents, marking them replayed
 * in the same transaction. A replayed row is never picked again, and eventIds dedupe, so
 * running a replay twice ingests nothing twice. A row still invalid for another reason than
 * the one it was quarantined for takes the new one, with its detail, in the same transaction.
 */
import type pg from 'pg';
import { groupsWithin } from '../../byte-budget';
import { toDetailText } from '../../events/detail-text';
import { classifyRecord, MAX_EVENT_BYTES, type RejectReason } from '../../events/validate';
import type { AcceptedEvent } from '../hot-path/apply-events';
import { describeDataError } from '../hot-path/errors';
import { rowsOf } from '../hot-path/event-rows';
import { applyIsolating } from '../hot-path/isolate';
import { countStoredEvents } from '../batch/import-dry-run';
import { withBoundedTransaction, type StatementBounds } from '../bounded-transaction';

export interface ReplayFilter {
  reasons?: string[];
  /** Quarantined at or after this instant (ISO). */
  from?: string;
  /** Quarantined before this instant (ISO). */
  to?: string;
  /** Quarantine ids up to this one only: the newest when the job began (newestQuarantineId). */
  throughId?: number;
}

export interface ReplayBatchResult {
  /** Highest quarantine id examined; the next batch starts after it. */
  lastId: number;
  examined: number;
  replayed: number;
  /** Valid now, but their eventId was already stored: marked replayed, no effect. */
  duplicates: number;
  stillInvalid: Record<string, number>;
}

/**
 * Reasons a classification of the row's bytes does not replace: an `unreadable` row holds a
 * compressed batch's records as they came, not one record, so what the classifier says of
 * those bytes (invalid_json) is not why it was rejected, and its detail (the offsets, the
 * codec) is what recovers them.
 */
const KEPT_REASONS: ReadonlySet<string> = new Set<RejectReason>(['unreadable']);
/** Whether a row quarantined as `was` and failing as `now` is filed anew. */
const refiled = (was: string, now: string) => now !== was && !KEPT_REASONS.has(was);

/** octet_length reads a stored value's size from its header, without fetching the value. */
const OVERSIZE = `(reason = 'too_large' OR octet_length(record_value) > $6)`;

/**
 * Record bytes fetched per batch, whatever its batchSize: each value is up to 64 KiB, so
 * 10,000 of them were 640 MB (and twice that as the driver's hex text) in the worker. A
 * batch ends at the row that passes this; a first row larger than it still goes alone.
 */
export const REPLAY_BATCH_BYTES = 8 * 1024 * 1024;

/** The newest quarantine id (0 when there is none): where a replay that begins now ends. */
export async function newestQuarantineId(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ id: number }>('SELECT coalesce(max(id), 0)::float8 AS id FROM quarantine');
  return rows[0]?.id ?? 0;
}

/** Writes what a batch did in the batch's own transaction, so the record commits (or rolls back) with the batch. */
export type BatchRecorder = (client: pg.PoolClient, batch: ReplayBatchResult) => Promise<void>;

export interface ReplayBatchOptions {
  now?: Date;
  maxBytes?: number;
  /** Writes the batch's progress in its transaction. */
  record?: BatchRecorder;
  /**
   * A job step's limits (lock waits, statements, its cancellation): a batch waiting for one
   * hunt's fence held the fences it had taken, the hot path's hunts among them, for as long
   * as the holder lived, hidden by the step's keep-alive heartbeats and out of reach of a cancel.
   */
  bounds?: StatementBounds;
}

/** The next batch after quarantine id `afterId`, in one transaction; undefined when none is left. */
export async function replayBatch(
  pool: pg.Pool,
  filter: ReplayFilter,
  afterId: number,
  batchSize: number,
  dryRun: boolean,
  options: ReplayBatchOptions = {},
): Promise<ReplayBatchResult | undefined> {
  const { now = new Date(), maxBytes = REPLAY_BATCH_BYTES, record, bounds } = options;
  // A dry run and an empty batch commit too: they only read (and row-locked), so there is nothing to undo.
  return withBoundedTransaction(pool, bounds, async (client) => {
    const batch = await replayIn(client, filter, afterId, batchSize, dryRun, now, maxBytes);
    if (batch && record) await record(client, batch);
    return batch;
  });
}

async function replayIn(
  client: pg.PoolClient,
  filter: ReplayFilter,
  afterId: number,
  batchSize: number,
  dryRun: boolean,
  now: Date,
  maxBytes: number,
): Promise<ReplayBatchResult | undefined> {
  // A record over the size limit is never valid, so its bytes (up to the broker's message
  // size, a batch of them gigabytes) are not fetched; and a too_large line of a backfill
  // file is kept cut to its first 64 KiB, which may parse, but is not the record.
  // Rows and sizes first, then the bytes of as many as the byte budget holds. A real run
  // locks its rows, waiting for another holder (a dry run reading them, an earlier attempt
  // not yet ended) rather than skipping them: the cursor moves past every row of the batch,
  // so a row skipped below it would never be replayed, and the run would still end a
  // success. Once the holder ends, a row it replayed no longer matches and is passed over.
  // A dry run changes nothing, so it locks nothing.
  const { rows: candidates } = await client.query<{ id: number; reason: string; oversize: boolean; size: number }>(
    `SELECT id, reason, ${OVERSIZE} AS oversize, CASE WHEN ${OVERSIZE} THEN 0 ELSE coalesce(octet_length(record_value), 0) END AS size
       FROM quarantine
      WHERE replayed_at IS NULL AND id > $1
        AND ($2::text[] IS NULL OR reason = ANY($2))
        AND ($3::timestamptz IS NULL OR quarantined_at >= $3)
        AND ($4::timestamptz IS NULL OR quarantined_at < $4)
        AND ($7::bigint IS NULL OR id <= $7)
      ORDER BY id LIMIT $5
      ${dryRun ? '' : 'FOR UPDATE'}`,
    [afterId, filter.reasons ?? null, filter.from ?? null, filter.to ?? null, batchSize, MAX_EVENT_BYTES, filter.throughId ?? null],
  );
  if (candidates.length === 0) return undefined;
  const taken = groupsWithin(candidates, maxBytes, (c) => c.size)[0] ?? [];
  const fetched = await client.query<{ id: number; record_value: Buffer | null }>(
    'SELECT id, record_value FROM quarantine WHERE id = ANY($1::bigint[])',
    [taken.filter((c) => !c.oversize).map((c) => c.id)],
  );
  const values = new Map(fetched.rows.map((r) => [Number(r.id), r.record_value]));
  const rows = taken.map((c) => ({ id: c.id, reason: c.reason, oversize: c.oversize, record_value: values.get(Number(c.id)) ?? null }));
  const accepted: (AcceptedEvent & { quarantineId: number; reason: string })[] = [];
  const stillInvalid: Record<string, number> = {};
  /** Rows still invalid for another reason than their own now. */
  const reasoned: Reasoned[] = [];
  for (const row of rows) {
    // Over the limit: never classified, so nothing new is known of it (its reason stays).
    if (row.oversize) {
      stillInvalid.too_large = (stillInvalid.too_large ?? 0) + 1;
      continue;
    }
    const result = classifyRecord(row.record_value, now);
    if (result.ok) {
      accepted.push({ event: result.event, instant: result.instant, source: `dlq-replay:${row.id}`, quarantineId: row.id, reason: row.reason });
      continue;
    }
    stillInvalid[result.reason] = (stillInvalid[result.reason] ?? 0) + 1;
    if (refiled(row.reason, result.reason)) reasoned.push({ id: row.id, reason: result.reason, detail: result.detail });
  }
  const lastId = rows[rows.length - 1]?.id ?? afterId;
  if (dryRun) {
    // What the real run would store of this batch: each eventId once, and none stored already
    // (a producer's retry may have stored it since it was quarantined). Within the batch only:
    // an eventId repeated in a later batch counts there again, and a record the database
    // would refuse counts as replayed.
    const ids = [...new Set(accepted.map((a) => a.event.eventId))];
    const wouldStore = ids.length - (await countStoredEvents(client, ids));
    return { lastId, examined: rows.length, replayed: wouldStore, duplicates: accepted.length - wouldStore, stillInvalid };
  }
  // A record the database still refuses stays quarantined (counted as unprocessable), and the rest go in.
  const applied = await applyIsolating(client, rowsOf(accepted));
  const refused = new Set(applied.refused.map((r) => r.index));
  if (refused.size > 0) stillInvalid.unprocessable = (stillInvalid.unprocessable ?? 0) + refused.size;
  for (const { index, err } of applied.refused) {
    const row = accepted[index];
    // As the hot path rejects a record the database refuses (pipeline/commit.ts).
    if (row && refiled(row.reason, 'unprocessable')) reasoned.push({ id: row.quarantineId, reason: 'unprocessable', detail: toDetailText(describeDataError(err)) });
  }
  const replayed = accepted.filter((_, i) => !refused.has(i));
  await client.query(
    `UPDATE quarantine q SET replayed_at = now(), replayed_event_id = r.event_id
       FROM unnest($1::bigint[], $2::text[]) AS r(id, event_id) WHERE q.id = r.id`,
    [replayed.map((a) => a.quarantineId), replayed.map((a) => a.event.eventId)],
  );
  await giveReasons(client, reasoned);
  return { lastId, examined: rows.length, replayed: applied.inserted, duplicates: replayed.length - applied.inserted, stillInvalid };
}

interface Reasoned {
  id: number;
  reason: string;
  /** toDetailText's, as the classifier's and the hot path's are. */
  detail: string;
}

/**
 * Files rows still invalid under the reason they fail for now: an unknown_type record whose
 * type exists now but whose payload breaks its schema kept unknown_type, so a replay of
 * schema_violation never picked it, and the gauges and alerts counted it under the old
 * reason. Only the reason and detail change: the unique key (position and bytes) does not
 * hold them, and a row's DLQ copy, sent or waiting, is left as it is (one not claimed yet goes
 * with the new reason; one a relay has claimed goes with the old, as it read the row; one
 * sent is not sent again).
 */
async function giveReasons(client: pg.PoolClient, reasoned: readonly Reasoned[]): Promise<void> {
  if (reasoned.length === 0) return;
  await client.query(
    `UPDATE quarantine q SET reason = r.reason, detail = r.detail
       FROM unnest($1::bigint[], $2::text[], $3::text[]) AS r(id, reason, detail) WHERE q.id = r.id`,
    [reasoned.map((r) => r.id), reasoned.map((r) => r.reason), reasoned.map((r) => r.detail)],
  );
}
