/**
 * Reads a Kafka topic over a time range for a backfill: the range becomes per-partition
 * offset bounds once (so "done" is well defined while producers keep writing), and the
 * reader consumes from a per-partition cursor to those bounds with a throw-away consumer
 * group, so nothing of the hot path's group or offsets is touched.
 */
import { randomUUID } from 'node:crypto';
import type { Admin, AdminConfig, Batch, Kafka, KafkaMessage } from 'kafkajs';
import { useBoundedCodecs } from '../../pipeline/compression';
import { fetchTopicState, GoneRangeWatch, KafkaRangeGoneError, openPartitions, rangeGoneReason, type KafkaRange, type PartitionOffsets } from './range-check';

export { remaining, type KafkaRange, type PartitionOffsets } from './range-check';

/**
 * The offsets to read for records stamped in [from, to): from the first record stamped at or
 * after `from` to the partition's end now. Not to the first stamped at or after `to`: a
 * producer sets its records' timestamps, and one record stamped in the future would end the
 * range there, leaving out every record after it (the reader skips those stamped outside
 * the window instead, `inTimeWindow`). None is left out at the start: a record stamped at or
 * after `from` cannot lie before the first such record.
 */
export async function resolveRange(kafka: Kafka, topic: string, fromMs: number | undefined): Promise<KafkaRange> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const watermarks = await admin.fetchTopicOffsets(topic);
    const high = Object.fromEntries(watermarks.map((p) => [String(p.partition), p.high]));
    const low = Object.fromEntries(watermarks.map((p) => [String(p.partition), p.low]));
    if (fromMs === undefined) return { start: low, end: high };
    const offsets = await admin.fetchTopicOffsetsByTimestamp(topic, fromMs);
    // -1: no record at or after that time in the partition; there is nothing to read.
    const start = Object.fromEntries(offsets.map((p) => [String(p.partition), p.offset === '-1' ? (high[String(p.partition)] ?? '0') : p.offset]));
    return { start, end: high };
  } finally {
    await admin.disconnect();
  }
}

/**
 * Whether a record read goes to the import: stamped in the window, or the stand-in for a
 * batch that could not be unpacked (too large, corrupt: pipeline/compression.ts) and began
 * before `to`. The stand-in carries the batch's first timestamp, and the batch's later
 * records may lie in the window: judged by that stamp, a batch whose first record is stamped
 * before `from` was left out as outside the range, with no quarantine row and no word. One
 * that began at or after `to` is past the window (the range reads on to the log's end).
 */
export function importsRecord(message: { timestamp: string; unreadable?: unknown }, fromMs: number | undefined, toMs: number | undefined): boolean {
  if (message.unreadable !== undefined) return inTimeWindow(message.timestamp, undefined, toMs);
  return inTimeWindow(message.timestamp, fromMs, toMs);
}

/** Whether a record's Kafka timestamp lies in [fromMs, toMs) (an open side: no bound). */
export function inTimeWindow(timestamp: string, fromMs: number | undefined, toMs: number | undefined): boolean {
  const ms = Number(timestamp);
  return (fromMs === undefined || ms >= fromMs) && (toMs === undefined || ms < toMs);
}

export interface KafkaSlice {
  partition: number;
  messages: KafkaMessage[];
}

/** Records [from, to) of a partition that its log no longer held when the read came to them. */
export interface DeletedRecords {
  partition: number;
  from: bigint;
  to: bigint;
}

/** How often a read waiting for records checks its abort signal and the topic. */
const SWEEP_MS = 1000;
/**
 * How long a read waits on Kafka without taking a record (or passing one: markers, deleted
 * records) before it gives up: longer than a consumer group's join. Past it the attempt fails
 * with a KafkaReadStalledError, which ends its consumer, and the step is retried with a new
 * one. It used to stop heartbeating instead, leaving the server to time the attempt out: the
 * attempt itself never learnt it had (a cancellation reaches an activity through its
 * heartbeats), so it kept its consumer and a worker slot for as long as Kafka stayed stuck.
 */
export const READ_STALL_LIMIT_MS = 60_000;

/** A range read that took nothing for READ_STALL_LIMIT_MS: the attempt ends, and is retried. */
export class KafkaReadStalledError extends Error {
  override readonly name = 'KafkaReadStalledError';
}

/**
 * Consumes from `cursor` up to `range.end`, handing each partition batch (bounded to the
 * range and to `maxRecords` in all) to `onSlice`; the cursor moves past a slice once `onSlice`
 * has returned. Returns the advanced cursor: how far it read, not what the caller committed
 * (the backfill's onSlice only queues a slice for committing, so it drains its commits before
 * it takes this cursor). `onWaiting` is called about once a second while
 * the read waits on a topic that is there and readable (not while `onSlice` runs), so the
 * caller can heartbeat: a step waiting on Kafka is not a dead worker.
 *
 * kafkajs calls eachBatch only for fetches with records to hand over, so a range can end in
 * ways eachBatch never sees: transaction markers or an aborted transaction (kafkajs steps
 * over them; its batch events say where), or records retention deleted before they were
 * read (the log now starts past the cursor: kafkajs starts again from the log's start, and
 * `onDeleted` is told of the records passed). Both move the cursor; and a sweep checks the
 * abort signal while nothing arrives, so a cancelled or timed-out attempt lets go of its
 * consumer instead of waiting for ever. The sweep also checks that the range's records are
 * still there (range-check.ts): a deleted or recreated topic throws a KafkaRangeGoneError,
 * which no retry can cure. An outage (the cluster does not answer) is not such an answer:
 * the read goes on waiting, and the caller's retries take over.
 */
export async function consumeRange(
  kafka: Kafka,
  topic: string,
  cursor: PartitionOffsets,
  range: KafkaRange,
  maxRecords: number,
  onSlice: (slice: KafkaSlice) => Promise<void>,
  signal: AbortSignal,
  onWaiting: () => void = () => undefined,
  onDeleted: (deleted: DeletedRecords) => void = () => undefined,
  stallLimitMs = READ_STALL_LIMIT_MS,
): Promise<PartitionOffsets> {
  const next = { ...cursor };
  if (openPartitions(next, range).length === 0) return next;
  useBoundedCodecs(); // batches compressed with any codec, within a budget
  // Log ends as the high watermark: a range's end (a last stable offset) never lies past it,
  // even while a transaction is open. readUncommitted: patches/kafkajs+2.2.4.patch.
  const admin = kafka.admin({ readUncommitted: true } as AdminConfig);
  await admin.connect();
  try {
    await confirmReadable(admin, topic, next, range, signal);
    return await readRange(kafka, admin, topic, next, range, maxRecords, onSlice, signal, onWaiting, onDeleted, stallLimitMs);
  } catch (err) {
    if (err instanceof KafkaRangeGoneError || signal.aborted) throw err;
    // The consumer failed (kafkajs gives up on a topic deleted under it): say why if the range is gone.
    await confirmReadable(admin, topic, next, range, signal).catch((checked: unknown) => {
      if (checked instanceof KafkaRangeGoneError) throw checked;
    });
    throw err;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** Returns once the range is readable; throws KafkaRangeGoneError once it is gone for sure, or what asking the cluster threw. */
async function confirmReadable(admin: Admin, topic: string, next: PartitionOffsets, range: KafkaRange, signal: AbortSignal): Promise<void> {
  const watch = new GoneRangeWatch();
  while (!signal.aborted) {
    const reason = rangeGoneReason(topic, await fetchTopicState(admin, topic), next, range);
    if (reason === undefined) return;
    if (watch.observe(reason)) throw new KafkaRangeGoneError(reason);
    await new Promise((resolve) => setTimeout(resolve, SWEEP_MS));
  }
}

async function readRange(
  kafka: Kafka,
  admin: Admin,
  topic: string,
  next: PartitionOffsets,
  range: KafkaRange,
  maxRecords: number,
  onSlice: (slice: KafkaSlice) => Promise<void>,
  signal: AbortSignal,
  onWaiting: () => void,
  onDeleted: (deleted: DeletedRecords) => void,
  stallLimitMs: number,
): Promise<PartitionOffsets> {
  const open = () => openPartitions(next, range);
  // Never creates the topic: a deleted topic made again, empty, by the reader's own metadata
  // requests would hide that it is gone. Never restarted by kafkajs after a crash: a restart
  // still connecting when this attempt ended (a Kafka outage past the stall limit) is out of
  // reach of disconnect(), joined later and fetched for the life of the worker, and kept the
  // worker from exiting. A crash ends the attempt; the step is retried with a new consumer.
  const consumer = kafka.consumer({
    groupId: `hunt-backfill-${randomUUID()}`,
    maxBytesPerPartition: 1024 * 1024,
    allowAutoTopicCreation: false,
    retry: { restartOnFailure: async () => false },
  });
  let taken = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let failure: unknown;
  let inSlice = false;
  let lastProgressMs = performance.now();
  /**
   * The partition's cursor moves to `offset` (at most its end); paused once at the end (also
   * when it got there before, through a slice), done once all are.
   */
  const moveTo = (partition: number, offset: bigint) => {
    const p = String(partition);
    const end = BigInt(range.end[p] ?? '0');
    if (offset > BigInt(next[p] ?? '0')) {
      next[p] = (offset < end ? offset : end).toString();
      lastProgressMs = performance.now();
    }
    if (BigInt(next[p] ?? '0') >= end) consumer.pause([{ topic, partitions: [partition] }]);
    if (open().length === 0) finish();
  };
  /**
   * The partition's log starts at `logStart`, past the cursor: the records between were
   * deleted before they were read. Told to onDeleted, then passed (no more than the range).
   */
  const passDeleted = (partition: number, logStart: bigint) => {
    const p = String(partition);
    const at = BigInt(next[p] ?? '0');
    const end = BigInt(range.end[p] ?? '0');
    const to = logStart < end ? logStart : end;
    if (to <= at) return;
    onDeleted({ partition, from: at, to });
    moveTo(partition, to);
  };
  /**
   * Where the records deleted before `fetchedFrom` end: the log's start, if it lies past the
   * cursor (none were deleted otherwise). Unconfirmed (Kafka did not answer), the fetch's
   * start counts: a loss reported too high beats one not reported.
   */
  const deletedUpTo = async (partition: number, fetchedFrom: bigint): Promise<bigint> => {
    const low = await fetchTopicState(admin, topic).then((state) => state?.low[String(partition)], () => undefined);
    if (low === undefined) return fetchedFrom;
    return BigInt(low) < fetchedFrom ? BigInt(low) : fetchedFrom;
  };
  // A crash kafkajs does not restart from would otherwise leave `finished` pending: every
  // attempt would end on its heartbeat timeout, retried for ever, with the cause only in the log.
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (payload.restart) return;
    failure ??= payload.error;
    finish();
  });
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    const stillOpen = open();
    for (const p of stillOpen) consumer.seek({ topic, partition: Number(p), offset: next[p] ?? '0' });
    // The rest (read to their range's end, or outside the range) are never fetched: the group is
    // new and starts at the log's start, so each would be read up to its range's end, all of it
    // thrown away, in the fetches the open partitions wait on.
    const done = (payload.memberAssignment[topic] ?? []).filter((partition) => !stillOpen.includes(String(partition)));
    for (const partition of done) {
      const end = range.end[String(partition)];
      if (end !== undefined) consumer.seek({ topic, partition, offset: end });
    }
    if (done.length > 0) consumer.pause([{ topic, partitions: done }]);
  });
  consumer.on(consumer.events.START_BATCH_PROCESS, ({ payload }) => {
    // A fetch of nothing but transaction markers or aborted records, covering the cursor.
    const first = payload.firstOffset as string | null;
    if (payload.topic !== topic || payload.batchSize !== 0 || first === null || range.end[String(payload.partition)] === undefined) return;
    const at = BigInt(next[String(payload.partition)] ?? '0');
    if (BigInt(first) <= at && at <= BigInt(payload.lastOffset)) moveTo(payload.partition, BigInt(payload.lastOffset) + 1n);
  });
  const watch = new GoneRangeWatch();
  /** Passes partitions whose range retention deleted, fails a range that is gone, and heartbeats while waiting on a readable topic. */
  const checkTopic = async () => {
    const state = await fetchTopicState(admin, topic);
    // A log that now starts past the range's end is never fetched from again. Not while a
    // slice is handed over: its records were read, and the cursor moves past them after.
    for (const [partition, low] of Object.entries(state?.low ?? {})) {
      const end = range.end[partition];
      if (end !== undefined && BigInt(low) >= BigInt(end) && !inSlice) passDeleted(Number(partition), BigInt(low));
    }
    const gone = watch.observe(rangeGoneReason(topic, state, next, range));
    if (gone) {
      failure ??= new KafkaRangeGoneError(gone);
      return finish();
    }
    if (!watch.suspect && !inSlice) onWaiting();
  };
  let sweeping = false;
  const sweep = setInterval(() => {
    if (signal.aborted) return finish();
    // Whatever holds it (a group it cannot join, a cluster that stopped answering), a read
    // that takes nothing ends: a slice being committed is not the read's wait.
    const idleMs = performance.now() - lastProgressMs;
    if (!inSlice && idleMs >= stallLimitMs) {
      failure ??= new KafkaReadStalledError(
        `the backfill's consumer of ${topic} took no record of its range for ${Math.round(idleMs / 1000)} s (partitions still open: ${open().join(', ')}): ` +
          'a group it cannot join, or a cluster that does not answer (the worker\'s log has kafkajs\'s errors); this attempt ends, and the step is retried with a new consumer',
      );
      return finish();
    }
    if (sweeping) return;
    sweeping = true;
    checkTopic()
      .catch(() => undefined) // an outage: no heartbeat, and the next sweep asks again; the consumer reports its own errors
      .finally(() => (sweeping = false));
  }, SWEEP_MS);
  try {
    // In the try: a connect that fails must stop the sweep too, which would run for ever.
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, heartbeat, resolveOffset }) => {
        if (failure || taken >= maxRecords || signal.aborted) return finish();
        const p = String(batch.partition);
        // kafkajs fetches from the cursor (its seek at the join, then on from what was taken),
        // unless the log no longer holds it: then it starts again from the log's start (the
        // consumer's "earliest"), past records deleted before they were read. It also steps
        // past the cursor over a compacted log's gaps: the log's start says which it was.
        const fetchedFrom = fetchedOffsetOf(batch);
        if (fetchedFrom !== undefined && fetchedFrom > BigInt(next[p] ?? '0')) passDeleted(batch.partition, await deletedUpTo(batch.partition, fetchedFrom));
        const from = BigInt(next[p] ?? '0');
        const end = BigInt(range.end[p] ?? '0');
        const inRange = batch.messages.filter((m) => BigInt(m.offset) >= from && BigInt(m.offset) < end);
        const messages = inRange.slice(0, maxRecords - taken);
        if (messages.length > 0) {
          inSlice = true;
          try {
            await onSlice({ partition: batch.partition, messages });
          } catch (err) {
            failure = err;
            return finish();
          } finally {
            inSlice = false;
          }
          taken += messages.length;
          next[p] = (BigInt(messages[messages.length - 1]!.offset) + 1n).toString();
          lastProgressMs = performance.now();
          await heartbeat();
        }
        // Say how far the batch is handled, or kafkajs fetches from the same offset again: a busy
        // loop over records already taken once a range is larger than one fetch.
        resolveOffset(messages.length < inRange.length ? messages[messages.length - 1]!.offset : batch.lastOffset());
        // All of the batch's part of the range taken: the cursor goes past all kafkajs stepped
        // over with it (transaction markers, aborted records), up to the end. Records past the
        // end mean everything before it was seen (even if retention deleted some of it
        // meanwhile): the partition is done.
        if (messages.length === inRange.length) moveTo(batch.partition, BigInt(batch.lastOffset()) + 1n);
        if (open().length === 0 || taken >= maxRecords) finish();
      },
    });
    await finished;
  } finally {
    clearInterval(sweep);
    await consumer.disconnect();
  }
  if (failure) throw failure;
  return next;
}

/** Where kafkajs fetched the batch from: kept on the batch without being declared in its types. */
function fetchedOffsetOf(batch: Batch): bigint | undefined {
  const fetched = (batch as Batch & { fetchedOffset?: string }).fetchedOffset;
  return fetched === undefined ? undefined : BigInt(fetched);
}
