/**
 * Reads a Kafka topic over a time range for a backfill: the range becomes per-partition
 * offset bounds once (so "done" is well defined while producers keep writing), and the
 * reader consumes from a per-partition cursor to those bounds with a throw-away consumer
 * group, so nothing of the hot path's group or offsets is touched.
 */
import { randomUUID } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';

/** Next offset to read per partition, as decimal strings (JSON-safe for heartbeats). */
export type PartitionOffsets = Record<string, string>;

export interface KafkaRange {
  start: PartitionOffsets;
  /** Exclusive end per partition. */
  end: PartitionOffsets;
}

/** Offsets of the first records at or after `from`, and at or after `to` (exclusive end). */
export async function resolveRange(kafka: Kafka, topic: string, fromMs: number | undefined, toMs: number | undefined): Promise<KafkaRange> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const watermarks = await admin.fetchTopicOffsets(topic);
    const high = Object.fromEntries(watermarks.map((p) => [String(p.partition), p.high]));
    const low = Object.fromEntries(watermarks.map((p) => [String(p.partition), p.low]));
    const at = async (ms: number | undefined, fallback: PartitionOffsets): Promise<PartitionOffsets> => {
      if (ms === undefined) return fallback;
      const offsets = await admin.fetchTopicOffsetsByTimestamp(topic, ms);
      // -1: no record at or after that time in the partition; its end is the high watermark.
      return Object.fromEntries(offsets.map((p) => [String(p.partition), p.offset === '-1' ? (high[String(p.partition)] ?? '0') : p.offset]));
    };
    return { start: await at(fromMs, low), end: await at(toMs, high) };
  } finally {
    await admin.disconnect();
  }
}

export function remaining(cursor: PartitionOffsets, end: PartitionOffsets): number {
  return Object.entries(end).reduce((sum, [p, e]) => sum + Math.max(0, Number(e) - Number(cursor[p] ?? e)), 0);
}

export interface KafkaSlice {
  partition: number;
  messages: KafkaMessage[];
}

/**
 * Consumes from `cursor` up to `range.end`, handing each partition batch (bounded to the
 * range and to `maxRecords` in all) to `onSlice`, which must finish (commit) before the
 * cursor moves. Returns the advanced cursor.
 */
export async function consumeRange(
  kafka: Kafka,
  topic: string,
  cursor: PartitionOffsets,
  range: KafkaRange,
  maxRecords: number,
  onSlice: (slice: KafkaSlice) => Promise<void>,
  signal: AbortSignal,
): Promise<PartitionOffsets> {
  const next = { ...cursor };
  const open = () => Object.keys(range.end).filter((p) => BigInt(next[p] ?? range.end[p] ?? '0') < BigInt(range.end[p] ?? '0'));
  if (open().length === 0) return next;
  const consumer = kafka.consumer({ groupId: `hunt-backfill-${randomUUID()}`, maxBytesPerPartition: 1024 * 1024 });
  let taken = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let failure: unknown;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    for (const p of open()) consumer.seek({ topic, partition: Number(p), offset: next[p] ?? '0' });
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, heartbeat, resolveOffset }) => {
        if (failure || taken >= maxRecords || signal.aborted) return finish();
        const p = String(batch.partition);
        const from = BigInt(next[p] ?? '0');
        const end = BigInt(range.end[p] ?? '0');
        const inRange = batch.messages.filter((m) => BigInt(m.offset) >= from && BigInt(m.offset) < end);
        const messages = inRange.slice(0, maxRecords - taken);
        if (messages.length > 0) {
          try {
            await onSlice({ partition: batch.partition, messages });
          } catch (err) {
            failure = err;
            return finish();
          }
          taken += messages.length;
          next[p] = (BigInt(messages[messages.length - 1]!.offset) + 1n).toString();
          await heartbeat();
        }
        // Records past the end in this batch mean everything before the end was seen (even if
        // retention deleted some of it meanwhile): the partition is done.
        // Say how far the batch is handled, or kafkajs fetches from the same offset again: a busy
        // loop over records already taken once a range is larger than one fetch.
        resolveOffset(messages.length < inRange.length ? messages[messages.length - 1]!.offset : batch.lastOffset());
        if (BigInt(batch.lastOffset()) >= end - 1n && BigInt(next[p] ?? '0') < end && taken < maxRecords) next[p] = end.toString();
        if (BigInt(next[p] ?? '0') >= end) consumer.pause([{ topic, partitions: [batch.partition] }]);
        if (open().length === 0 || taken >= maxRecords) finish();
      },
    });
    await finished;
  } finally {
    await consumer.disconnect();
  }
  if (failure) throw failure;
  return next;
}
