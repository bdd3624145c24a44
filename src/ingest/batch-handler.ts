/**
 * kafkajs's eachBatch for the input topic: checks where the fetch starts against the Postgres
 * position (seeking, or handling a retention gap or a log reset, when they differ), then
 * classifies the records in slices and buffers each slice in the partition's commit lane,
 * resolving its offsets in kafkajs as soon as it is buffered.
 */
import type { Batch, Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { backoffMs, sleep } from '../backoff';
import { classifySlice, plausibleTimestamp } from '../pipeline/classify';
import { sliceEnd } from '../pipeline/record-slices';
import type { MicroBatcher } from './batcher';
import type { IngestMetrics } from './metrics';
import { PositionsLoading, type PartitionPositions } from './positions';
import type { LogResetHandler } from './log-reset';
import type { RetentionGapHandler } from './retention-gap';

/**
 * Classifying is synchronous CPU work; while it runs, the micro-batch committing meanwhile
 * cannot send its next statement. Classify in slices this small (a few milliseconds) and
 * let I/O callbacks run between them, so the commit is never held up for long.
 */
const CLASSIFY_SLICE_RECORDS = 250;
/**
 * A slice also ends at this many record bytes (at least one record each). The lane's bound of
 * two micro-batches plus one slice (batcher.ts) holds only if a slice is small: 250 records of
 * 256 KiB, one gzip batch of a few hundred KB on the wire, are 62.5 MiB of rejects' copies, and
 * a lane held three such slices, past the consumer's memory, every restart the same. Ordinary
 * events (250 of about 600 bytes) never reach it.
 */
export const CLASSIFY_SLICE_BYTES = 1024 * 1024;
const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A fetch whose check against Postgres failed is checked again after this, doubling, up to CHECK_RETRY_MAX_MS. */
const CHECK_RETRY_FIRST_MS = 50;
const CHECK_RETRY_MAX_MS = 5000;
/**
 * While the handler waits on Postgres, kafkajs's heartbeat is called this often (it sends one
 * only once its interval is due), since kafkajs sends none of its own until the handler
 * returns: a check can wait long on a connection that died without a word (the query timeout
 * is 2 minutes), and a slice waits for room while its lane's commit runs (up to the statement
 * limit, 110 s, when Postgres is that slow), either past the session timeout that drops the
 * member, which then rejoins, and every member with it.
 */
const HEARTBEAT_WHILE_WAITING_MS = 1000;

/**
 * `work`, with kafkajs's heartbeat called meanwhile. A rebalance it reports goes to
 * `onRebalance` at once; without one, it is seen by the caller's next heartbeatOrLeave.
 */
async function heartbeating<T>(heartbeat: () => Promise<void>, work: Promise<T>, onRebalance?: (err: unknown) => void): Promise<T> {
  const keepAlive = setInterval(
    () =>
      heartbeat().catch((err: unknown) => {
        if (isRebalancing(err)) onRebalance?.(err);
      }),
    HEARTBEAT_WHILE_WAITING_MS,
  );
  try {
    return await work;
  } finally {
    clearInterval(keepAlive);
  }
}

export interface BatchHandlerDeps {
  topic: string;
  consumer: Consumer;
  positions: PartitionPositions;
  onRetentionGap: RetentionGapHandler;
  onLogReset: LogResetHandler;
  laneOf: (partition: number) => MicroBatcher;
  metrics: IngestMetrics;
  maxBatchEvents: number;
  /** Whether a record fetched again is the one applied at its offset (store/hot-path/applied-record.ts). */
  isApplied: (partition: number, record: KafkaMessage) => Promise<boolean>;
  /** Commits what the lanes buffered (bounded), before this member rejoins for a rebalance. */
  commitBuffered: () => Promise<void>;
  /** A fetch's check against Postgres failed (Postgres unreachable): it is checked again after `delayMs`. */
  onCheckFailed: (err: unknown, partition: number, delayMs: number) => void;
}

export function createBatchHandler(deps: BatchHandlerDeps): (payload: EachBatchPayload) => Promise<void> {
  const { topic, consumer, positions, laneOf, metrics } = deps;

  /**
   * The records of the fetch to take, when it starts where Postgres says the partition is;
   * otherwise seeks (or stops at a gap, or reads a replaced log again) and takes none.
   */
  async function recordsToTake(batch: Batch): Promise<KafkaMessage[] | undefined> {
    const { partition } = batch;
    const fetchedOffset = fetchedOffsetOf(batch);
    const check = await positions.check(partition, fetchedOffset);
    if (check.action === 'seek') {
      consumer.seek({ topic, partition, offset: check.offset.toString() });
      return undefined;
    }
    if (check.action === 'reset') {
      await deps.onLogReset({ partition, ...check });
      return undefined;
    }
    if (check.action === 'verify') {
      const first = batch.messages[0];
      // Marked verified only once the check is done: one that fails (Postgres unreachable)
      // is made again on the fetch's next try, never passed over.
      if (first && BigInt(first.offset) === check.offset && !(await deps.isApplied(partition, first))) {
        await deps.onLogReset({ partition, position: check.position, logStart: check.logStart, replacedAt: check.offset });
        positions.verified(partition);
        return undefined;
      }
      positions.verified(partition);
      // The record checked (or a marker kafkajs stepped over) was applied already.
      return batch.messages.filter((m) => BigInt(m.offset) >= check.position);
    }
    if (check.action === 'gap') {
      if (!(await deps.onRetentionGap(partition, check.from, check.to))) return undefined;
      if (fetchedOffset !== check.to) {
        consumer.seek({ topic, partition, offset: check.to.toString() });
        return undefined;
      }
    }
    return batch.messages;
  }

  /**
   * recordsToTake, tried again while it fails (Postgres unreachable, or a join's positions
   * still loading), with the member's heartbeats going on between tries: thrown to kafkajs,
   * the failure would be retried a few times and then crash the consumer, which leaves the
   * group and rebalances every member, again and again for as long as the outage lasts.
   * Undefined (nothing taken) once the fetch is stale or the consumer stops.
   */
  async function recordsToTakeRetrying(batch: Batch, payload: Pick<EachBatchPayload, 'heartbeat' | 'isRunning' | 'isStale'>): Promise<KafkaMessage[] | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        // A rebalance seen meanwhile is seen again by heartbeatOrLeave, after the try.
        return await heartbeating(payload.heartbeat, recordsToTake(batch));
      } catch (err) {
        if (!payload.isRunning() || payload.isStale()) return undefined;
        const delayMs = backoffMs(attempt, CHECK_RETRY_FIRST_MS, CHECK_RETRY_MAX_MS);
        if (!(err instanceof PositionsLoading)) deps.onCheckFailed(err, batch.partition, delayMs);
        await sleep(delayMs);
        await heartbeatOrLeave(payload.heartbeat);
        if (!payload.isRunning() || payload.isStale()) return undefined;
      }
    }
  }

  /**
   * kafkajs's heartbeat; when the group is rebalancing, what the lanes hold is committed
   * before kafkajs rejoins (the error goes on to it): the members then given our partitions
   * start from Postgres, and would read it again (and copy its rejects to the DLQ again).
   */
  async function heartbeatOrLeave(heartbeat: () => Promise<void>): Promise<void> {
    try {
      await heartbeat();
    } catch (err) {
      if (isRebalancing(err)) await leaveForRejoin(err);
      throw err;
    }
  }

  /** Handlers committing the lanes before they hand kafkajs the rejoin: kafkajs waits for them. */
  let leavesCommitting = 0;
  /** Takes nothing more, commits what the lanes hold (bounded), and hands kafkajs the rebalance `err` to rejoin. */
  async function leaveForRejoin(err: unknown): Promise<never> {
    if (!positions.heldForRejoin) positions.holdForRejoin();
    leavesCommitting++;
    try {
      await deps.commitBuffered();
    } finally {
      leavesCommitting--;
    }
    positions.rejoinHandedOver();
    throw err;
  }

  // The heartbeat a slice carries to its lane, for a commit that waits (flush.ts): the latest
  // fetch's, not the slice's own. kafkajs makes each fetch's heartbeat in the scope of its
  // batch, and a closure keeps its whole scope alive: a slice waiting in a stalled lane kept
  // the whole fetch response it came in (up to KAFKA_FETCH_MAX_BYTES) in memory, for a few
  // records counted against the lane's budget. Every fetch's heartbeat beats for the same
  // member, so one kept serves them all.
  let latestHeartbeat: () => Promise<void> = async () => undefined;
  const memberHeartbeat = () => latestHeartbeat();

  return async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
    // Fetches while held, long after the rejoin was handed to kafkajs: its join failed and it
    // fetches on outside the group (a member it no longer knows joins again only when told:
    // with no member id its heartbeats send nothing, and a join it gave up on is not tried
    // again), every fetch dropped, for good, with nothing to say so. Told to rejoin again.
    const sinceHandedOver = positions.sinceRejoinHandedOver();
    if (leavesCommitting === 0 && sinceHandedOver > REJOIN_OVERDUE_MS) throw new RejoinOverdueError(sinceHandedOver);
    latestHeartbeat = heartbeat;
    const messages = await recordsToTakeRetrying(batch, { heartbeat, isRunning, isStale });
    if (!messages) return;
    const { partition } = batch;
    if (messages.length === 0) {
      // Only the record checked after a join: kafkajs goes on after it.
      resolveOffset(batch.lastOffset());
      return;
    }
    const receivedAt = Date.now();
    const highWatermark = BigInt(batch.highWatermark);
    const sliceSize = Math.min(deps.maxBatchEvents, CLASSIFY_SLICE_RECORDS);
    // A slice waits while its lane holds a full micro-batch behind the one committing: the
    // member's heartbeats go on meanwhile (one timer for the whole fetch). A rebalance they
    // report is acted on at once: slices waiting for room (this fetch's and the others')
    // stop waiting, and what the lanes hold is committed, bounded, before kafkajs rejoins.
    // Seen only after the fetch was buffered, it waited a lane's commit per slice (up to
    // the statement limit each when Postgres is slow), past the group's rebalance timeout:
    // the member was dropped while it still took and committed its old partitions.
    let rebalance: { err: unknown } | undefined;
    const added = await heartbeating(heartbeat, addSlices(messages), (err) => {
      rebalance ??= { err };
      positions.holdForRejoin();
    });
    if (rebalance) await leaveForRejoin(rebalance.err);
    if (!added) return;
    // kafkajs rejoins once every fetch's eachBatch has returned.
    await heartbeatOrLeave(heartbeat);

    /** False when the rest of the fetch is dropped (stale, stopping, or rejoining). */
    async function addSlices(messages: KafkaMessage[]): Promise<boolean> {
      for (let i = 0; i < messages.length; ) {
        if (i > 0) await yieldToIo();
        // A seek since the fetch (a join's, while this fetch was in flight) makes it stale:
        // kafkajs fetches again from there, so what is left here is dropped, and not counted.
        // So is the rest of a fetch once the group rebalances: it is read from Postgres's
        // position after the rejoin, by whoever owns the partition then.
        if (!isRunning() || isStale() || positions.heldForRejoin) return false;
        const { end, bytes } = sliceEnd(messages, i, sliceSize, CLASSIFY_SLICE_BYTES);
        const records = messages.slice(i, end);
        const last = records[records.length - 1]!;
        const isLastSlice = end >= messages.length;
        const nextOffset = isLastSlice ? offsetAfter(batch) : BigInt(last.offset) + 1n;
        const work = {
          slice: classifySlice(topic, partition, records, new Date()),
          topic,
          partition,
          nextOffset,
          highWatermark,
          recordCount: records.length,
          byteCount: bytes,
          heartbeat: memberHeartbeat,
        };
        // Waits while the lane holds a full micro-batch behind the one committing (not once
        // the member is to rejoin: the slice is then left, as the rest of the fetch).
        if (!(await laneOf(partition).add(work, positions.rejoinSignal))) return false;
        // Counted once taken: a slice left for the rejoin is read again, and counted then.
        countRead(metrics, records, receivedAt);
        resolveOffset(last.offset);
        positions.advance(partition, nextOffset);
        i = end;
      }
      return true;
    }
  };
}

/**
 * How long after the rejoin was handed to kafkajs a fetch may still come: it fetches nothing
 * while it rejoins, so only the handlers of fetches already made (milliseconds) run after.
 */
export const REJOIN_OVERDUE_MS = 5_000;

/** Handed to kafkajs to make it rejoin: its `type` is one of kafkajs's rebalancing errors (runner.js). */
export class RejoinOverdueError extends Error {
  readonly type = 'REBALANCE_IN_PROGRESS';
  constructor(heldMs: number) {
    super(`still fetching ${Math.round(heldMs)} ms after leaving to rejoin the group (kafkajs's join failed, or was never made): rejoining again`);
    this.name = 'RejoinOverdueError';
  }
}

/** kafkajs's errors that make it rejoin the group (its own isRebalancing, and a member it no longer knows). */
const REJOIN_ERRORS = new Set(['REBALANCE_IN_PROGRESS', 'NOT_COORDINATOR_FOR_GROUP', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID']);
function isRebalancing(err: unknown): boolean {
  return REJOIN_ERRORS.has(String((err as { type?: unknown } | null)?.type));
}

/**
 * The offset after everything `batch` covers: after its last record, or after the transaction
 * markers and aborted records that follow it, which kafkajs filters out and steps over (it
 * resolves them with the last record). Otherwise a log ending in a marker would leave the
 * Postgres position one short of the log end for good.
 */
function offsetAfter(batch: Batch): bigint {
  const lastRecord = BigInt(batch.messages[batch.messages.length - 1]!.offset);
  const lastFetched = BigInt(batch.lastOffset());
  return (lastFetched > lastRecord ? lastFetched : lastRecord) + 1n;
}

/**
 * Where the fetch behind `batch` started. kafkajs keeps it on the batch without declaring it
 * in its types; the first offset (control records included) is the same unless compaction
 * removed records there.
 */
function fetchedOffsetOf(batch: Batch): bigint {
  const fetched = (batch as Batch & { fetchedOffset?: string }).fetchedOffset;
  return BigInt(fetched ?? batch.firstOffset() ?? batch.highWatermark);
}

/** Records taken from a fetch, and how long after their Kafka timestamps they reached us. */
function countRead(metrics: IngestMetrics, records: readonly KafkaMessage[], receivedAt: number): void {
  metrics.recordsRead.inc(records.length);
  for (const m of records) {
    const timestamp = Number(m.timestamp);
    if (plausibleTimestamp(timestamp, receivedAt)) metrics.fetchDelaySeconds.observe((receivedAt - timestamp) / 1000);
  }
}
