/**
 * One micro-batch, one Postgres transaction: raw events and projection deltas, quarantine
 * rows and the partition offsets commit together or not at all (DESIGN invariant 1).
 *
 * Unless the database refuses the batch for a reason of its data (isDataError): then the
 * transaction is retried once with the events applied under savepoints, halving any group
 * the database refuses until the refused events stand alone. They are rejected as
 * `unprocessable` with the database's reason, the others are applied in their order (so
 * per-hunt arrival order holds), and all of it still commits as ONE transaction, offsets
 * included. One record can never stall its partition (DESIGN invariant 7).
 */
import type pg from 'pg';
import { toDetailText } from '../events/detail-text';
import { kept } from './classify';
import { applyEventRows, isStoredEventConflict, lockHuntFences, stageRows, storeAndScoreStaged, type PlainInsert } from '../store/hot-path/apply-events';
import { describeDataError, isDataError } from '../store/hot-path/errors';
import { rowCount, type EventRows } from '../store/hot-path/event-rows';
import { applyIsolating } from '../store/hot-path/isolate';
import { storeOffsets, type PartitionOffset } from '../store/hot-path/offsets';
import { quarantineRecords, writeQuarantineInserts, type RecordOrigin, type RejectedRecord } from '../store/hot-path/quarantine';
import type { RecordOrigins } from '../store/hot-path/record-origins';
import { withPipelinedTransaction } from '../store/transaction';
import { withBoundedTransaction, type StatementBounds } from '../store/bounded-transaction';

export interface MicroBatch {
  /** Accepted events, in arrival order. */
  rows: EventRows;
  /** Where each row came from. */
  origins: RecordOrigins;
  rejected: RejectedRecord[];
  offsets: PartitionOffset[];
}

export interface CommitResult {
  /** Events stored for the first time (and scored). */
  inserted: number;
  /** Accepted events whose eventId was already stored (or repeated in the batch): no effect. */
  duplicates: number;
  /** Events the database refused, rejected as `unprocessable` (quarantined in the commit). */
  unprocessable: RejectedRecord[];
  /** True when the first attempt was refused and records had to be isolated. */
  isolated: boolean;
  /** True when a plain insert (CommitOptions.plainInsert) met a stored eventId, and the batch went again the ordinary way. */
  plainInsertConflicted: boolean;
}

export interface CommitOptions {
  /** Quarantine the rejects as waiting for their DLQ copies (the hot path; src/ingest/dlq-relay.ts sends them). */
  copyRejectsToDlq?: boolean;
  /**
   * The caller has found the rows that repeat an eventId of an earlier row or of a stored
   * event (`leaveOut`), and believes the rest are new: they go in with a plain INSERT
   * (applyEventRows' `plainInsert`). If one was stored after all, that transaction fails
   * whole on the primary key, and the batch is committed again the ordinary way, in a new
   * transaction.
   */
  plainInsert?: PlainInsert;
  /**
   * Limits for a job step's commit (a backfill's): its lock waits, its statements, and the
   * step's cancellation. Without them a part that waited for one hunt's fence held the fences
   * it had taken (every other hunt of the part, the hot path's included) for as long as the
   * holder lived, hidden by the step's keep-alive heartbeats and out of reach of a cancel.
   * Not for a pipelining pool (the hot path's), which has its own.
   */
  bounds?: StatementBounds;
}

export async function commitMicroBatch(pool: pg.Pool, groupId: string, batch: MicroBatch, options: CommitOptions = {}): Promise<CommitResult> {
  const quarantineOptions = { copyToDlq: options.copyRejectsToDlq ?? false };
  try {
    return await commitWhole(pool, groupId, batch, quarantineOptions, options.plainInsert, options.bounds);
  } catch (err) {
    if (!isDataError(err)) throw err;
    // A stored eventId the caller did not know of: the ordinary way skips it.
    if (options.plainInsert && isStoredEventConflict(err)) {
      return { ...(await commitMicroBatch(pool, groupId, batch, { ...options, plainInsert: undefined })), plainInsertConflicted: true };
    }
  }
  // Any other refusal of the data, either way: isolate the records refused.
  return withBoundedTransaction(pool, options.bounds, async (client) => {
    const applied = await applyIsolating(client, batch.rows);
    const unprocessable = applied.refused.map(({ index, err }) => unprocessableRecord(batch.origins.at(index), err));
    await quarantineRecords(client, [...batch.rejected, ...unprocessable], quarantineOptions);
    await storeOffsets(client, groupId, batch.offsets);
    return {
      inserted: applied.inserted,
      duplicates: rowCount(batch.rows) - applied.inserted - unprocessable.length,
      unprocessable,
      isolated: true,
      plainInsertConflicted: false,
    };
  });
}

/** The batch in one transaction, all of it applied (no record refused). */
async function commitWhole(
  pool: pg.Pool,
  groupId: string,
  batch: MicroBatch,
  quarantineOptions: { copyToDlq: boolean },
  plainInsert?: PlainInsert,
  bounds?: StatementBounds,
): Promise<CommitResult> {
  if (pool.options.pipeline) return commitPipelined(pool, groupId, batch, quarantineOptions, plainInsert);
  return withBoundedTransaction(pool, bounds, async (client) => {
    // Rejects first: their bytes cross the link before the fences are taken (stageRows).
    await quarantineRecords(client, batch.rejected, quarantineOptions);
    const applied = await applyEventRows(client, batch.rows, { plainInsert });
    await storeOffsets(client, groupId, batch.offsets);
    return { inserted: applied.inserted, duplicates: applied.duplicates, unprocessable: [], isolated: false, plainInsertConflicted: false };
  });
}

/**
 * The same transaction as commitWhole's on a pipelining connection (withPipelinedTransaction): the
 * quarantine rows, the staged events, the fence lock, store-and-score and the offsets go in
 * one write, behind BEGIN, and Postgres runs them in that order as if they had been sent one
 * by one; the COMMIT follows once all have answered. Two round trips instead of five. The big
 * statements come before the fence lock, so no hunt's fence waits on their bytes.
 */
async function commitPipelined(pool: pg.Pool, groupId: string, batch: MicroBatch, quarantineOptions: { copyToDlq: boolean }, plainInsert?: PlainInsert): Promise<CommitResult> {
  let stored: Promise<number> = Promise.resolve(0);
  await withPipelinedTransaction(pool, (client) => {
    // Each call issues its query before it first awaits, so the queries go in this order.
    const statements: Promise<unknown>[] = [...writeQuarantineInserts(client, batch.rejected, quarantineOptions)];
    if (rowCount(batch.rows) > 0) {
      statements.push(stageRows(client, batch.rows));
      statements.push(lockHuntFences(client, [...batch.rows.huntIds].sort()));
      stored = storeAndScoreStaged(client, { plainInsert });
      statements.push(stored);
    }
    statements.push(storeOffsets(client, groupId, batch.offsets));
    return statements;
  });
  const inserted = await stored;
  return { inserted, duplicates: rowCount(batch.rows) - inserted, unprocessable: [], isolated: false, plainInsertConflicted: false };
}

/**
 * A refused record, rejected with the database's reason. Its key kept as classify keeps a
 * reject's (an event's value is far below the limit), so the check after a join finds it by
 * the same bytes (applied-record.ts).
 */
export function unprocessableRecord(origin: RecordOrigin, err: unknown): RejectedRecord {
  return { ...origin, key: kept(origin.key), reason: 'unprocessable', detail: toDetailText(describeDataError(err)) };
}

/** The furthest offset per partition among the slices of one micro-batch. */
export function mergeOffsets(offsets: readonly PartitionOffset[]): PartitionOffset[] {
  const merged = new Map<string, PartitionOffset>();
  for (const o of offsets) {
    const key = `${o.topic}\t${o.partition}`;
    const seen = merged.get(key);
    if (!seen || o.nextOffset > seen.nextOffset) merged.set(key, o);
  }
  return [...merged.values()];
}
