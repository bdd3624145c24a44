/**
 * The hot path's loop: kafkajs eachBatch → skip what was already taken → classify →
 * buffer in the partition's commit lane → (meanwhile, one at a time per lane) DLQ + one
 * transaction. Decisions live in classify.ts and the store; this file only moves records
 * and handles failure.
 *
 * Where a partition resumes is decided by Postgres (consumer_offsets), never by Kafka's
 * committed offsets: on every (re)join the consumer seeks to the stored offsets, and each
 * batch is checked against them in case a fetch raced the seek. Offsets are resolved in
 * kafkajs as soon as a slice is buffered, so the next fetch overlaps the commit; Kafka's
 * committed offsets may therefore run ahead of Postgres, which is why they are not trusted.
 */
import { Partitioners, type Consumer, type EachBatchPayload, type Kafka, type Producer } from 'kafkajs';
import type pg from 'pg';
import type { Config } from '../config';
import type { Logger } from '../log';
import { loadOffsets } from '../store/offsets';
import { MicroBatcher, type SliceWork } from './batcher';
import { classifySlice } from './classify';
import { commitMicroBatch, mergeOffsets } from './commit';
import { sendToDlq } from './dlq';
import type { IngestMetrics } from './metrics';
import { BatchSizing } from './sizing';

export interface IngestDeps {
  config: Config;
  pool: pg.Pool;
  kafka: Kafka;
  metrics: IngestMetrics;
  logger: Logger;
}

export interface IngestHandle {
  /** True between a successful start and stop. */
  isRunning(): boolean;
  /** Stops fetching, commits what is buffered, leaves the group, closes the DLQ producer. */
  stop(): Promise<void>;
}

/**
 * Classifying is synchronous CPU work; while it runs, the micro-batch committing meanwhile
 * cannot send its next statement. Classify in slices this small (a few milliseconds) and
 * let I/O callbacks run between them, so the commit is never held up for long.
 */
const CLASSIFY_SLICE_RECORDS = 250;
const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));

const RETRY_BASE_MS = 100;
const RETRY_MAX_MS = 5000;

export async function startIngest(deps: IngestDeps): Promise<IngestHandle> {
  const { config, pool, kafka, metrics, logger } = deps;
  const { topics } = config.kafka;
  const { groupId } = config.ingest;
  let stopping = false;
  let running = false;

  const consumer: Consumer = kafka.consumer({
    groupId,
    maxBytes: config.ingest.fetchMaxBytes,
    maxBytesPerPartition: config.ingest.partitionFetchMaxBytes,
    sessionTimeout: config.ingest.sessionTimeoutMs,
    heartbeatInterval: Math.floor(config.ingest.sessionTimeoutMs / 10),
    // Postgres, not Kafka, decides where to resume; do not let a retry storm rejoin early.
    retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 10_000 },
  });
  const dlqProducer: Producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });

  // Next offset per partition to take: as Postgres has it after every group (re)join (another
  // member may have moved a partition on meanwhile), then advanced as slices are buffered.
  // A reload can go back behind slices still buffered or committing; re-reading them is
  // harmless, since stored events are skipped by eventId and offsets only move forward.
  const nextToTake = new Map<number, bigint>();
  const reloadStoredOffsets = async () => {
    const offsets = await loadOffsets(pool, groupId, topics.events);
    nextToTake.clear();
    for (const [partition, next] of offsets) nextToTake.set(partition, next);
    return offsets;
  };

  const sizing = new BatchSizing({ mode: config.ingest.batchMode, ...config.ingest });
  metrics.batchTarget.set(sizing.targetRecords);
  // Lanes commit concurrently, each on its own connection, so Postgres can use more than one
  // core. A partition always maps to the same lane: its micro-batches commit in order, one
  // at a time. Records are keyed by huntId (CONTRACT.md), so lanes touch disjoint hunts and
  // do not wait on each other's fence rows.
  const lanes = Array.from({ length: config.ingest.commitLanes }, () => new MicroBatcher(sizing, (works) => flushWithRetry(works)));
  const laneOf = (partition: number) => lanes[partition % lanes.length] as MicroBatcher;

  async function flushWithRetry(works: SliceWork[]): Promise<void> {
    const accepted = works.flatMap((w) => w.slice.accepted);
    const rejected = works.flatMap((w) => w.slice.rejected);
    const offsets = mergeOffsets(works.map((w) => ({ topic: w.topic, partition: w.partition, nextOffset: w.nextOffset })));
    for (let attempt = 0; ; attempt++) {
      try {
        await sendToDlq(dlqProducer, topics.dlq, rejected);
        const started = performance.now();
        const result = await commitMicroBatch(pool, groupId, { accepted, rejected, offsets });
        const transactionMs = performance.now() - started;
        recordBatchMetrics(works, result.inserted, accepted.length - result.inserted, transactionMs);
        return;
      } catch (err) {
        if (stopping && attempt > 0) throw new Error('ingest stopping; micro-batch left uncommitted for the next run', { cause: err });
        metrics.commitRetries.inc();
        const delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** attempt);
        logger.warn(
          { err, attempt, delayMs: delay, partitions: offsets.map((o) => `${o.topic}/${o.partition}@${o.nextOffset}`) },
          'micro-batch commit failed; retrying (nothing was committed)',
        );
        await Promise.all(works.map((w) => w.heartbeat().catch(() => undefined)));
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  function recordBatchMetrics(works: SliceWork[], inserted: number, duplicates: number, transactionMs: number) {
    const now = Date.now();
    let records = 0;
    let lag = 0;
    for (const w of works) {
      records += w.recordCount;
      const partitionLag = Number(w.highWatermark - w.nextOffset);
      lag += Math.max(0, partitionLag);
      metrics.consumerLag.set({ topic: w.topic, partition: String(w.partition) }, Math.max(0, partitionLag));
      for (const ts of w.slice.acceptedTimestamps) metrics.freshnessSeconds.observe((now - ts) / 1000);
      for (const r of w.slice.rejected) metrics.rejects.inc({ reason: r.reason });
    }
    metrics.eventsAccepted.inc(inserted);
    metrics.duplicatesSkipped.inc(duplicates);
    metrics.batchSize.observe(records);
    metrics.transactionSeconds.observe(transactionMs / 1000);
    sizing.observe({ records, transactionMs, lag });
    metrics.batchTarget.set(sizing.targetRecords);
  }

  async function eachBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { topic, partition } = batch;
    if (!nextToTake.has(partition)) await reloadStoredOffsets();
    const resumeAt = nextToTake.get(partition);
    const firstOffset = BigInt(batch.firstOffset() ?? batch.highWatermark);
    if (resumeAt !== undefined && firstOffset > resumeAt) {
      // Kafka is ahead of Postgres (a fetch from Kafka's committed offset raced our seek):
      // go back to where Postgres says, and process nothing from this fetch.
      consumer.seek({ topic, partition, offset: resumeAt.toString() });
      return;
    }
    metrics.recordsRead.inc(batch.messages.length);
    const receivedAt = Date.now();
    for (const m of batch.messages) metrics.fetchDelaySeconds.observe((receivedAt - Number(m.timestamp)) / 1000);
    const fresh = batch.messages.filter((m) => resumeAt === undefined || BigInt(m.offset) >= resumeAt);
    const highWatermark = BigInt(batch.highWatermark);
    const sliceSize = Math.min(config.ingest.maxBatchEvents, CLASSIFY_SLICE_RECORDS);
    for (let i = 0; i < fresh.length; i += sliceSize) {
      if (i > 0) await yieldToIo();
      if (!isRunning() || isStale()) return;
      const records = fresh.slice(i, i + sliceSize);
      const last = records[records.length - 1]!;
      const nextOffset = BigInt(last.offset) + 1n;
      await laneOf(partition).add({
        slice: classifySlice(topic, partition, records, new Date()),
        topic,
        partition,
        nextOffset,
        highWatermark,
        recordCount: records.length,
        heartbeat,
      });
      resolveOffset(last.offset);
      if ((nextToTake.get(partition) ?? -1n) < nextOffset) nextToTake.set(partition, nextOffset);
    }
    const lastOffset = batch.lastOffset();
    if (fresh.length === 0 && batch.messages.length > 0) resolveOffset(lastOffset);
    await heartbeat();
  }

  consumer.on(consumer.events.GROUP_JOIN, async ({ payload }) => {
    const assigned = payload.memberAssignment[topics.events] ?? [];
    try {
      const offsets = await reloadStoredOffsets();
      for (const partition of assigned) {
        const next = offsets.get(partition);
        if (next !== undefined) consumer.seek({ topic: topics.events, partition, offset: next.toString() });
      }
      logger.info({ groupId, assigned, resumeFrom: Object.fromEntries([...offsets].map(([p, o]) => [p, o.toString()])) }, 'joined group');
    } catch (err) {
      // eachBatch reloads before its first batch of any partition, so this is not fatal.
      logger.warn({ err }, 'could not load stored offsets on group join');
    }
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    logger.error({ err: payload.error, restart: payload.restart }, 'consumer crashed');
  });

  await dlqProducer.connect();
  await consumer.connect();
  await consumer.subscribe({ topic: topics.events, fromBeginning: true });
  await consumer.run({
    eachBatchAutoResolve: false,
    // Kafka's committed offsets are only a convenience for tools; resolved offsets go there
    // after Postgres has committed them.
    autoCommit: true,
    autoCommitInterval: 5000,
    partitionsConsumedConcurrently: config.ingest.partitionsConcurrency,
    eachBatch,
  });
  running = true;
  logger.info({ topic: topics.events, groupId, mode: config.ingest.batchMode }, 'ingest running');

  return {
    isRunning: () => running && !stopping,
    async stop() {
      if (stopping) return;
      stopping = true;
      // Fetch no more, commit what is buffered, then leave the group: members that take our
      // partitions over start from offsets that include everything we took.
      await consumer.stop();
      await Promise.all(lanes.map((lane) => lane.drain())).catch((err: unknown) => logger.warn({ err }, 'buffered records left uncommitted; the next run re-reads them'));
      await consumer.disconnect();
      await dlqProducer.disconnect();
      running = false;
      logger.info('ingest stopped');
    },
  };
}
