/**
 * Commits one micro-batch of a lane (isolating records the database refuses, see
 * src/pipeline/commit.ts), retrying outages with backoff for as long as they last. Its
 * rejects are quarantined in the same transaction as waiting for their DLQ copies, which
 * the DLQ relay sends after the commit (dlq-relay.ts): the DLQ's troubles never hold the
 * stream. A micro-batch that runs out of time (the statement limit) is not retried as it was,
 * which would fail the same way for as long as Postgres stays that slow: its rest is committed
 * in parts (parted-commit.ts), halved at each such failure, and the sizing keeps later
 * micro-batches in parts below that size. While a commit retries, the lane's stalled-seconds
 * gauge grows and /readyz turns 503 past the stall limit (health.ts). Its events go with a
 * plain insert, the repeats of eventIds known stored left out (known-events.ts).
 */
import type pg from 'pg';
import { backoffMs, sleep } from '../backoff';
import type { Logger } from '../log';
import { advanceSequences, ADVANCE_SEQUENCES_COMMAND, SeqNotMovableError, SEQUENCES_MOVED } from '../store/serial-sequences';
import { exceededTempFileLimit, isSeqCollision, ranOutOfTime } from '../store/hot-path/errors';
import { concatRows, rowCount } from '../store/hot-path/event-rows';
import { StoredPositionsWentBack, type PartitionOffset } from '../store/hot-path/offsets';
import { concatOrigins } from '../store/hot-path/record-origins';
import type { SliceWork } from './batcher';
import { mergeOffsets, type CommitResult } from '../pipeline/commit';
import { failureCode } from './dlq';
import { siftKnownEvents, type KnownEvents } from './known-events';
import { PartedCommit } from './parted-commit';
import type { FreshnessTally } from './freshness-tally';
import type { IngestMetrics } from './metrics';
import type { BatchSizing } from './sizing';

const RETRY_BASE_MS = 100;
const RETRY_MAX_MS = 5000;

export interface FlushDeps {
  pool: pg.Pool;
  groupId: string;
  metrics: IngestMetrics;
  logger: Logger;
  sizing: BatchSizing;
  isStopping: () => boolean;
  /** Offsets now in Postgres (for Kafka's trailing committed offsets). */
  onCommitted: (offsets: PartitionOffset[]) => void;
  /** The position Postgres is known to hold at least for a partition (PartitionPositions.floorOf). */
  floorOf?: (partition: number) => bigint | undefined;
  /** Postgres lost commits (StoredPositionsWentBack): the consumer must stop, not commit on. */
  onPositionsWentBack?: (err: StoredPositionsWentBack) => void;
  /** Rejects were quarantined: their DLQ copies wait for the relay. */
  onRejectsQuarantined: () => void;
  /** Counts events within the freshness SLO's target, for `hunt slo`. */
  freshness?: FreshnessTally;
  /** The eventIds committed lately (known-events.ts): PartitionPositions.committedEvents, forgotten when its floors drop. */
  knownEvents: KnownEvents;
}

export function createFlush(deps: FlushDeps): (works: SliceWork[]) => Promise<void> {
  const { pool, groupId, metrics, logger } = deps;
  // Shared by the lanes: an eventId one lane stored is a duplicate in another's batch too.
  const known = deps.knownEvents;
  return async function flush(works) {
    const batch = {
      rows: concatRows(works.map((w) => w.slice.rows)),
      origins: concatOrigins(works.map((w) => w.slice.origins)),
      rejected: works.flatMap((w) => w.slice.rejected),
      offsets: mergeOffsets(works.map((w) => ({ topic: w.topic, partition: w.partition, nextOffset: w.nextOffset, floor: deps.floorOf?.(w.partition) }))),
    };
    const partitionOf = rowPartitions(works);
    const repeats = siftKnownEvents(batch.rows, known, partitionOf);
    // Only when a commit waits; once per distinct heartbeat (a lane's slices share their member's).
    const heartbeat = () => Promise.all([...new Set(works.map((w) => w.heartbeat))].map((beat) => beat().catch(() => undefined)));
    // A batch of rejects only stores no event: it does not use up the pause.
    const plainInsert = rowCount(batch.rows) > 0 && known.pause.take() ? { leaveOut: repeats } : undefined;
    const parts = new PartedCommit(pool, groupId, batch, deps.sizing.partLimit, { plainInsert });
    for (let attempt = 0; ; ) {
      const started = performance.now();
      try {
        const result = await parts.commitRest();
        // Rows refused by the database are not stored: remember the batch only when none was.
        if (!result.isolated) known.remember(batch.rows, repeats, partitionOf);
        if (result.plainInsertConflicted) {
          known.pause.conflicted();
          metrics.plainInsertConflicts.inc();
        }
        recordMetrics(deps, works, result, performance.now() - started, parts.split ? parts.lastPart : undefined);
        deps.onCommitted(batch.offsets);
        if (batch.rejected.length > 0 || result.unprocessable.length > 0) deps.onRejectsQuarantined();
        // One line a micro-batch, not one a record: a trigger or constraint that refuses every
        // row would otherwise log tens of MB a second. Each record's reason is in quarantine.
        const first = result.unprocessable[0];
        if (first) {
          logger.error(
            { records: result.unprocessable.length, first: { topic: first.topic, partition: first.partition, offset: first.offset, detail: first.detail } },
            'records refused by the database; rejected as unprocessable (each with its reason in quarantine)',
          );
        }
        return;
      } catch (err) {
        // No retry can put back what Postgres lost: stop, and let the restart read it again.
        if (err instanceof StoredPositionsWentBack) {
          deps.onPositionsWentBack?.(err);
          throw err;
        }
        if (deps.isStopping() && (attempt > 0 || parts.split)) throw new Error('ingest stopping; micro-batch left uncommitted for the next run', { cause: err });
        metrics.commitRetries.inc();
        const partitions = batch.offsets.map((o) => `${o.topic}/${o.partition}@${o.nextOffset}`);
        // The same part would run out of time (or temporary file space) again on every retry,
        // and the lane would stand still for good: the rest is committed in parts of half its
        // size, at once.
        const failed = parts.failedPart;
        const outOfTime = ranOutOfTime(err);
        if ((outOfTime || exceededTempFileLimit(err)) && failed.units > 1) {
          parts.halve();
          deps.sizing.tooBigToCommit(failed.units, failed.ms);
          metrics.batchTarget.set(deps.sizing.targetRecords);
          metrics.commitSplits.inc();
          logger.warn(
            { err, code: failureCode(err), failedRecords: failed.units, afterMs: Math.round(failed.ms), partRecords: parts.partUnits, partitions },
            `micro-batch commit ran out of ${outOfTime ? 'time' : 'temporary file space (temp_file_limit)'}; committing the rest in smaller parts, and later micro-batches smaller (what is committed stays; a part is one transaction, the last one stores the offsets)`,
          );
          await heartbeat();
          continue;
        }
        if (isSeqCollision(err) && (await advanceSeqAfterCollision(pool, logger))) continue;
        const delay = backoffMs(attempt++, RETRY_BASE_MS, RETRY_MAX_MS);
        logger.warn(
          { err, code: failureCode(err), attempt: attempt - 1, delayMs: delay, partitions },
          'micro-batch commit failed; retrying, which applies nothing twice (a commit whose answer was lost may have landed: its events then count as duplicates). An outage of Postgres passes; a code that repeats on every attempt is a setting to fix, see docs/operators.md',
        );
        await heartbeat();
        await sleep(delay);
      }
    }
  };
}

/**
 * An insert drew a value a stored row holds (an event's seq, a quarantine row's id: a restore
 * or a switchover did not carry the sequence, serial-sequences.ts): the sequences are moved
 * forward, and the micro-batch committed again at once. True when one was moved (by another
 * member meanwhile: false, and the retry waits as usual); a sequence this role may not move is
 * logged with the command that does.
 */
async function advanceSeqAfterCollision(pool: pg.Pool, logger: Logger): Promise<boolean> {
  try {
    const advanced = await advanceSequences(pool);
    if (advanced.length > 0) logger.warn({ advanced }, `${SEQUENCES_MOVED}; committing again`);
    return advanced.length > 0;
  } catch (err) {
    logger.error({ err }, err instanceof SeqNotMovableError ? err.message : `a sequence is behind the stored rows and could not be checked; if this repeats, run ${ADVANCE_SEQUENCES_COMMAND}`);
    return false;
  }
}

/** The partition of each row of the works' rows joined in order (concatRows). */
function rowPartitions(works: readonly SliceWork[]): (row: number) => number {
  const partitions = new Int32Array(works.reduce((n, w) => n + rowCount(w.slice.rows), 0));
  let at = 0;
  for (const w of works) {
    partitions.fill(w.partition, at, at + rowCount(w.slice.rows));
    at += rowCount(w.slice.rows);
  }
  return (row) => partitions[row] as number;
}

/** `lastPart`: of a batch committed in parts, the last one, which the sizing learns from (the time of the whole says little of a part's size). */
function recordMetrics(deps: FlushDeps, works: SliceWork[], result: CommitResult, transactionMs: number, lastPart?: { units: number; ms: number }): void {
  const { metrics, sizing } = deps;
  const now = Date.now();
  let records = 0;
  let lag = 0;
  for (const w of works) {
    records += w.recordCount;
    const partitionLag = Number(w.highWatermark - w.nextOffset);
    lag += Math.max(0, partitionLag);
    metrics.consumerLag.set({ topic: w.topic, partition: String(w.partition) }, Math.max(0, partitionLag));
    for (const ts of w.slice.acceptedTimestamps) metrics.freshnessSeconds.observe((now - ts) / 1000);
    const implausible = rowCount(w.slice.rows) - w.slice.acceptedTimestamps.length;
    if (implausible > 0) metrics.implausibleTimestamps.inc(implausible);
    deps.freshness?.observe(now, w.slice.acceptedTimestamps);
    for (const r of w.slice.rejected) metrics.rejects.inc({ reason: r.reason });
  }
  if (result.isolated) metrics.isolations.inc();
  if (result.unprocessable.length > 0) metrics.rejects.inc({ reason: 'unprocessable' }, result.unprocessable.length);
  metrics.eventsAccepted.inc(result.inserted);
  metrics.duplicatesSkipped.inc(result.duplicates);
  metrics.batchSize.observe(records);
  metrics.transactionSeconds.observe(transactionMs / 1000);
  sizing.observe(lastPart ? { records: lastPart.units, transactionMs: lastPart.ms, lag } : { records, transactionMs, lag });
  metrics.batchTarget.set(sizing.targetRecords);
}
