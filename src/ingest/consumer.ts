/**
 * The hot path's loop: kafkajs eachBatch → check the fetch against the Postgres position →
 * classify → buffer in the partition's commit lane → (meanwhile, one at a time per lane) DLQ
 * + one transaction. Decisions live in classify.ts, commit.ts and the store; positions live
 * in positions.ts, readiness in health.ts; this file wires them and moves records.
 *
 * Where a partition resumes is decided by Postgres (consumer_offsets), never by Kafka's
 * committed offsets. Offsets are resolved in kafkajs as soon as a slice is buffered, so the
 * next fetch overlaps the commit; nothing is taken as done before Postgres has it.
 */
import { Partitioners, type Admin, type Batch, type Consumer, type EachBatchPayload, type Kafka } from 'kafkajs';
import type pg from 'pg';
import type { Config } from '../config';
import type { Logger } from '../log';
import { loadOffsets, storeOffsets } from '../store/hot-path/offsets';
import { withTransaction } from '../store/transaction';
import { MicroBatcher } from './batcher';
import { classifySlice } from '../pipeline/classify';
import { createDlqSender } from './dlq';
import { createFlush } from './flush';
import type { FreshnessTally } from './freshness-tally';
import { IngestHealth } from './health';
import { trailingKafkaCommits } from './kafka-commits';
import type { IngestMetrics } from './metrics';
import { startPartitionMonitor } from './monitor';
import { PartitionPositions, type Watermarks } from './positions';
import { BatchSizing } from './sizing';
import type { PreparedTopics } from './topics';

export interface IngestDeps {
  config: Config;
  pool: pg.Pool;
  kafka: Kafka;
  metrics: IngestMetrics;
  logger: Logger;
  /** Limits read from the topics at start-up (prepareTopics). */
  topicLimits: PreparedTopics;
  /** Counts events within the freshness SLO's target (service.ts stores them). */
  freshness?: FreshnessTally;
}

export interface IngestHandle {
  /** True between a successful start and stop, unless the consumer died. */
  isRunning(): boolean;
  /** Ready, or why not: crashed, stalled past the limit, stopped at a retention gap. */
  readiness(): { ready: true } | { ready: false; reason: string };
  /** Rejects if the consumer dies for good (a crash kafkajs does not restart from). */
  readonly failed: Promise<never>;
  /** Stops fetching, commits what is buffered, leaves the group, closes the producers. */
  stop(): Promise<void>;
}

/**
 * Classifying is synchronous CPU work; while it runs, the micro-batch committing meanwhile
 * cannot send its next statement. Classify in slices this small (a few milliseconds) and
 * let I/O callbacks run between them, so the commit is never held up for long.
 */
const CLASSIFY_SLICE_RECORDS = 250;
const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function startIngest(deps: IngestDeps): Promise<IngestHandle> {
  const { config, pool, kafka, metrics, logger } = deps;
  const topic = config.kafka.topics.events;
  const { groupId } = config.ingest;
  let stopping = false;
  let running = false;
  let failWith: (err: Error) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => (failWith = reject));
  failed.catch(() => undefined); // observed by whoever awaits it; never unhandled

  const consumer: Consumer = kafka.consumer({
    groupId,
    maxBytes: config.ingest.fetchMaxBytes,
    maxBytesPerPartition: config.ingest.partitionFetchMaxBytes,
    sessionTimeout: config.ingest.sessionTimeoutMs,
    heartbeatInterval: Math.floor(config.ingest.sessionTimeoutMs / 10),
    // Postgres, not Kafka, decides where to resume; do not let a retry storm rejoin early.
    retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 10_000 },
  });
  const dlqProducer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  const admin: Admin = kafka.admin();
  const watermarks = (partitions?: number[]) => topicWatermarks(admin, topic, partitions);

  const positions = new PartitionPositions({ pool, groupId, topic, startFrom: config.ingest.startFrom, watermarks });
  const sizing = new BatchSizing({ mode: config.ingest.batchMode, ...config.ingest });
  metrics.batchTarget.set(sizing.targetRecords);
  const kafkaCommits = trailingKafkaCommits(consumer, logger);
  const flush = createFlush({
    pool,
    groupId,
    dlq: createDlqSender(dlqProducer, config.kafka.topics.dlq, deps.topicLimits.dlqMaxMessageBytes, logger),
    metrics,
    logger,
    sizing,
    isStopping: () => stopping,
    onCommitted: (offsets) => kafkaCommits.note(offsets),
    freshness: deps.freshness,
  });
  // Lanes commit concurrently, each on its own connection, so Postgres can use more than one
  // core. A partition always maps to the same lane: its micro-batches commit in order, one
  // at a time. Records are keyed by huntId (CONTRACT.md), so lanes touch disjoint hunts and
  // do not wait on each other's fence rows.
  const lanes = Array.from({ length: config.ingest.commitLanes }, () => new MicroBatcher(sizing, flush));
  const laneOf = (partition: number) => lanes[partition % lanes.length] as MicroBatcher;
  const health: IngestHealth = new IngestHealth({
    stallLimitMs: config.ingest.stallLimitMs,
    lanes,
    partitionsOfLane: (lane) => health.assignedPartitions().filter((p) => p % lanes.length === lane),
    metrics,
  });
  const monitor = startPartitionMonitor({
    health,
    topic,
    intervalMs: Math.min(5000, Math.max(250, Math.floor(config.ingest.stallLimitMs / 3))),
    watermarks: () => watermarks(),
    storedOffsets: () => loadOffsets(pool, groupId, topic),
    logger,
  });

  /** Handles a retention gap; true when the partition goes on from the log start. */
  async function onRetentionGap(partition: number, from: bigint, to: bigint): Promise<boolean> {
    const lost = to - from;
    metrics.retentionGapRecords.inc({ topic, partition: String(partition) }, Number(lost));
    const stop = config.ingest.onRetentionGap === 'stop';
    logger.error(
      { topic, partition, firstLostOffset: from.toString(), lastLostOffset: (to - 1n).toString(), lost: lost.toString(), policy: config.ingest.onRetentionGap },
      `retention deleted ${lost} records of ${topic}/${partition} before they were read; ${stop ? 'consumption of the partition stopped (INGEST_ON_RETENTION_GAP=stop)' : 'continuing from the log start'}`,
    );
    if (stop) {
      consumer.pause([{ topic, partitions: [partition] }]);
      health.markStoppedAtGap(partition, `partition ${partition} lost ${lost} records to retention (offsets ${from}-${to - 1n}) and is stopped (INGEST_ON_RETENTION_GAP=stop)`);
      return false;
    }
    // Recorded at once, so the gap is reported once, not again after a restart.
    await withTransaction(pool, (client) => storeOffsets(client, groupId, [{ topic, partition, nextOffset: to }]));
    positions.skipTo(partition, to);
    return true;
  }

  async function eachBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { partition } = batch;
    const fetchedOffset = fetchedOffsetOf(batch);
    const check = await positions.check(partition, fetchedOffset);
    if (check.action === 'seek') {
      consumer.seek({ topic, partition, offset: check.offset.toString() });
      return;
    }
    if (check.action === 'gap') {
      if (!(await onRetentionGap(partition, check.from, check.to))) return;
      if (fetchedOffset !== check.to) {
        consumer.seek({ topic, partition, offset: check.to.toString() });
        return;
      }
    }
    metrics.recordsRead.inc(batch.messages.length);
    const receivedAt = Date.now();
    for (const m of batch.messages) metrics.fetchDelaySeconds.observe((receivedAt - Number(m.timestamp)) / 1000);
    const highWatermark = BigInt(batch.highWatermark);
    const sliceSize = Math.min(config.ingest.maxBatchEvents, CLASSIFY_SLICE_RECORDS);
    for (let i = 0; i < batch.messages.length; i += sliceSize) {
      if (i > 0) await yieldToIo();
      if (!isRunning() || isStale()) return;
      const records = batch.messages.slice(i, i + sliceSize);
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
      positions.advance(partition, nextOffset);
    }
    await heartbeat();
  }

  consumer.on(consumer.events.GROUP_JOIN, async ({ payload }) => {
    const assigned = payload.memberAssignment[topic] ?? [];
    health.setAssignment(assigned);
    metrics.partitionsAssigned.reset();
    for (const partition of assigned) metrics.partitionsAssigned.set({ topic, partition: String(partition) }, 1);
    try {
      const stored = await positions.reload();
      for (const partition of assigned) {
        consumer.seek({ topic, partition, offset: (await positions.positionOf(partition)).toString() });
      }
      logger.info({ groupId, assigned, resumeFrom: Object.fromEntries([...stored].map(([p, o]) => [p, o.toString()])) }, 'joined group');
    } catch (err) {
      // eachBatch checks every fetch against the position anyway, so this is not fatal.
      logger.warn({ err }, 'could not load stored offsets on group join');
    }
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    metrics.consumerCrashes.inc({ restart: String(payload.restart) });
    if (payload.restart) {
      logger.warn({ err: payload.error }, 'consumer crashed; kafkajs restarts it');
      return;
    }
    logger.error({ err: payload.error }, 'consumer crashed and will not restart');
    health.markCrashed('the Kafka consumer crashed and does not restart (see the log)');
    running = false;
    failWith(new Error(`the Kafka consumer crashed: ${payload.error.message}`, { cause: payload.error }));
  });

  await admin.connect();
  await dlqProducer.connect();
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachBatchAutoResolve: false,
    autoCommit: false,
    partitionsConsumedConcurrently: config.ingest.partitionsConcurrency,
    eachBatch,
  });
  running = true;
  logger.info({ topic, groupId, mode: config.ingest.batchMode, lanes: lanes.length }, 'ingest running');

  return {
    isRunning: () => running && !stopping,
    readiness: () => (running || stopping ? health.status() : { ready: false, reason: 'the consumer is not running' }),
    failed,
    async stop() {
      if (stopping) return;
      stopping = true;
      monitor.stop();
      kafkaCommits.stop();
      // Fetch no more, then commit what is buffered: members that take our partitions over
      // start from the offsets in Postgres, which then include everything we took.
      await consumer.stop();
      await Promise.all(lanes.map((lane) => lane.drain())).catch((err: unknown) => logger.warn({ err }, 'buffered records left uncommitted; the next run re-reads them'));
      await consumer.disconnect();
      await dlqProducer.disconnect();
      await admin.disconnect().catch(() => undefined);
      running = false;
      logger.info('ingest stopped');
    },
  };
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

/** Log start and high watermark per partition of `topic` (all partitions, or the ones given). */
async function topicWatermarks(admin: Admin, topic: string, partitions?: number[]): Promise<Map<number, Watermarks>> {
  const offsets = await admin.fetchTopicOffsets(topic);
  const wanted = partitions ? new Set(partitions) : undefined;
  return new Map(
    offsets.filter((o) => !wanted || wanted.has(o.partition)).map((o) => [o.partition, { low: BigInt(o.low), high: BigInt(o.high) }]),
  );
}
