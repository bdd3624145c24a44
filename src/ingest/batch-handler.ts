/**
 * kafkajs's eachBatch for the input topic: checks where the fetch starts against the Postgres
 * position (seeking, or handling a retention gap or a log reset, when they differ), then
 * classifies the records in slices and buffers each slice in the partition's commit lane,
 * resolving its offsets in kafkajs as soon as it is buffered.
 */
import type { Batch, Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { classifySlice, plausibleTimestamp } from '../pipeline/classify';
import type { MicroBatcher } from './batcher';
import type { IngestMetrics } from './metrics';
import type { PartitionPositions } from './positions';
import type { LogResetHandler } from './log-reset';
import type { RetentionGapHandler } from './retention-gap';

/**
 * Classifying is synchronous CPU work; while it runs, the micro-batch committing meanwhile
 * cannot send its next statement. Classify in slices this small (a few milliseconds) and
 * let I/O callbacks run between them, so the commit is never held up for long.
 */
const CLASSIFY_SLICE_RECORDS = 250;
const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface BatchHandlerDeps {
  topic: string;
  consumer: Consumer;
  positions: PartitionPositions;
  onRetentionGap: RetentionGapHandler;
  onLogReset: LogResetHandler;
  laneOf: (partition: number) => MicroBatcher;
  metrics: IngestMetrics;
  maxBatchEvents: number;
}

export function createBatchHandler(deps: BatchHandlerDeps): (payload: EachBatchPayload) => Promise<void> {
  const { topic, consumer, positions, laneOf, metrics } = deps;

  /** True when the fetch starts where Postgres says the partition is; otherwise seeks (or stops at a gap). */
  async function startsAtPosition(batch: Batch): Promise<boolean> {
    const { partition } = batch;
    const fetchedOffset = fetchedOffsetOf(batch);
    const check = await positions.check(partition, fetchedOffset);
    if (check.action === 'seek') {
      consumer.seek({ topic, partition, offset: check.offset.toString() });
      return false;
    }
    if (check.action === 'reset') {
      await deps.onLogReset({ partition, ...check });
      return false;
    }
    if (check.action === 'gap') {
      if (!(await deps.onRetentionGap(partition, check.from, check.to))) return false;
      if (fetchedOffset !== check.to) {
        consumer.seek({ topic, partition, offset: check.to.toString() });
        return false;
      }
    }
    return true;
  }

  return async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
    if (!(await startsAtPosition(batch))) return;
    const { partition } = batch;
    metrics.recordsRead.inc(batch.messages.length);
    const receivedAt = Date.now();
    for (const m of batch.messages) {
      const timestamp = Number(m.timestamp);
      if (plausibleTimestamp(timestamp, receivedAt)) metrics.fetchDelaySeconds.observe((receivedAt - timestamp) / 1000);
    }
    const highWatermark = BigInt(batch.highWatermark);
    const sliceSize = Math.min(deps.maxBatchEvents, CLASSIFY_SLICE_RECORDS);
    for (let i = 0; i < batch.messages.length; i += sliceSize) {
      if (i > 0) await yieldToIo();
      if (!isRunning() || isStale()) return;
      const records = batch.messages.slice(i, i + sliceSize);
      const last = records[records.length - 1]!;
      const isLastSlice = i + sliceSize >= batch.messages.length;
      const nextOffset = isLastSlice ? offsetAfter(batch) : BigInt(last.offset) + 1n;
      await laneOf(partition).add({
        slice: classifySlice(topic, partition, records, new Date()),
        topic,
        partition,
        nextOffset,
        highWatermark,
        recordCount: records.length,
        byteCount: byteCountOf(records),
        heartbeat,
      });
      resolveOffset(last.offset);
      positions.advance(partition, nextOffset);
    }
    await heartbeat();
  };
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

function byteCountOf(records: readonly KafkaMessage[]): number {
  let bytes = 0;
  for (const r of records) bytes += (r.key?.length ?? 0) + (r.value?.length ?? 0);
  return bytes;
}
