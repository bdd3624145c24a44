/**
 * The hot path's loop: kafkajs eachBatch → check the fetch against the Postgres position →
 * classify → buffer in the partition's commit lane → (meanwhile, one at a time per lane) one
 * transaction, rejects quarantined in it → the DLQ relay copies them to the DLQ topic.
 * Decisions live in src/pipeline (classify.ts, commit.ts) and the store;
 * positions live in positions.ts, readiness in health.ts, the lanes in commit-lanes.ts, the
 * fetch handler in batch-handler.ts, records kafkajs steps over in filtered-records.ts; this
 * file wires them and starts and stops the consumer.
 *
 * Where a partition resumes is decided by Postgres (consumer_offsets), never by Kafka's
 * committed offsets. Offsets are resolved in kafkajs as soon as a slice is buffered, so the
 * next fetch overlaps the commit; nothing is taken as done before Postgres has it.
 */
import { type Admin, type Consumer, type EachBatchPayload, type Kafka, type KafkaMessage, type Producer } from 'kafkajs';
import type { Config } from '../config';
import type { Logger } from '../log';
import { isAppliedRecord } from '../store/hot-path/applied-record';
import { loadOffsetsAsServed, StoredPositionsWentBack } from '../store/hot-path/offsets';
import type { MicroBatcher } from './batcher';
import { createBatchHandler } from './batch-handler';
import { createCommitLanes, type CommitLaneDeps } from './commit-lanes';
import { createDlqProducer, createDlqSender, failureCode } from './dlq';
import { startDlqRelay, type DlqRelay } from './dlq-relay';
import { everyFewSeconds, sharedProbe } from '../api/throttle';
import { useBoundedCodecs } from '../pipeline/compression';
import type { KafkaErrorListener } from '../pipeline/kafka-client';
import { watchFilteredRecords } from './filtered-records';
import { resumeFromPostgres, watchGroupEvents } from './group-events';
import { trailingKafkaCommits, type TrailingKafkaCommits } from './kafka-commits';
import { startPartitionMonitor } from './monitor';
import { logEndReader } from './log-end';
import { logResetHandler } from './log-reset';
import { PartitionPositions, type Watermarks } from './positions';
import { retentionGapHandler } from './retention-gap';
import { createDlqAgain } from './topics';
import { withTimeout } from '../time-limit';

/** What the commit lanes need (pool, metrics, topic limits, freshness tally), and the Kafka client. */
export interface IngestDeps extends CommitLaneDeps {
  kafka: Kafka;
  /**
   * The client of the DLQ producer, when it is to be another than `kafka`'s: kafkajs logs a
   * broker's answer without its topic, so the DLQ topic's "does not host this topic-partition"
   * on `kafka` would read as the input topic's (see recheck below).
   */
  dlqKafka?: Kafka;
  /** Registers the listener for the errors kafkajs logs (createKafka's onError) on `kafka`. */
  watchKafkaErrors?: (listener: KafkaErrorListener) => void;
  /** Told once the consumer's own health reports stalls (from before it joins its group): what watched the start-up before can stop. */
  healthReporting?: () => void;
}

/** A broker's answer while a topic is deleted (and maybe created again) under a running consumer. */
const TOPIC_GONE = /does not host this topic-partition/i;

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

export async function startIngest(deps: IngestDeps): Promise<IngestHandle> {
  const { config, pool, kafka, metrics, logger } = deps;
  const topic = config.kafka.topics.events;
  const { groupId } = config.ingest;
  let stopping = false;
  let running = false;
  let failWith: (err: Error) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => (failWith = reject));
  failed.catch(() => undefined); // observed by whoever awaits it; never unhandled

  const consumer = createConsumer(kafka, config, () => stopping);
  const dlqProducer = createDlqProducer(deps.dlqKafka ?? kafka);
  const admin: Admin = kafka.admin();
  const watermarks = (partitions?: number[]) => topicWatermarks(admin, topic, partitions);
  const logEnds = logEndReader(kafka);

  const positions = new PartitionPositions({ pool, groupId, topic, startFrom: config.ingest.startFrom, watermarks });
  const recreateDlq = () => createDlqAgain(deps.dlqKafka ?? kafka, config.kafka.topics.dlq, deps.topicLimits.dlqMaxMessageBytes, deps.topicLimits.dlqShape);
  let wakeDlqRelay: () => void = () => undefined; // the relay starts once the DLQ producer is connected
  const { lanes, laneOf, health } = createCommitLanes(deps, {
    isStopping: () => stopping,
    onCommitted: (offsets) => {
      for (const o of offsets) positions.noteStored(o.partition, o.nextOffset);
      kafkaCommits.note(offsets);
    },
    onRejectsQuarantined: () => wakeDlqRelay(),
    floorOf: (partition) => positions.floorOf(partition),
    onPositionsWentBack: (err) => positionsWentBack(err),
    // What the lanes committed lately: the positions forget it whenever their floors drop.
    knownEvents: positions.committedEvents,
  });
  const kafkaCommits = trailingKafkaCommits({ consumer, logger, assignedPartitions: () => health.assignedPartitions() });
  // Stopping (the process exits non-zero) without committing on: the restart joins and reads
  // again from the positions Postgres holds, the lost commits' records included.
  let wentBack = false;
  const positionsWentBack = (err: StoredPositionsWentBack) => {
    if (wentBack) return;
    wentBack = true;
    logger.error(
      { err, partitions: err.partitions.map((p) => `${p.topic}/${p.partition}`) },
      'Postgres lost committed positions (a failover to a replica that was behind, or a restore; or another member read a partition\'s log again from its start); stopping so that the restart reads their records again',
    );
    onFatal(err);
  };
  // Before a join loads the positions, and before this member rejoins for a rebalance (so the
  // members taking partitions over start after what it took): bounded like a handover, so a
  // Postgres that does not answer cannot hold the group.
  const commitBuffered = () =>
    withTimeout(Promise.all(lanes.map((lane) => lane.drain())), HANDOVER_COMMIT_MS).then(
      () => undefined,
      (err: unknown) => logger.warn({ err }, 'could not commit the buffered records before the rebalance; they are read again'),
    );
  const onRetentionGap = retentionGapHandler({ topic, policy: config.ingest.onRetentionGap, consumer, positions, laneOf, health, metrics, logger });
  const monitor = startPartitionMonitor({
    health,
    topic,
    intervalMs: Math.min(5000, Math.max(250, Math.floor(config.ingest.stallLimitMs / 3))),
    watermarks: async () => {
      const [marks, ends] = await Promise.all([watermarks(), logEnds.read(topic)]);
      for (const [partition, mark] of marks) mark.logEnd = ends.get(partition);
      return marks;
    },
    storedOffsets: () => loadOffsetsAsServed(pool, groupId, topic),
    positionFloors: () => {
      const behindFloors = positions.floorCheck(health.assignedPartitions());
      return {
        check(stored) {
          const behind = behindFloors(stored).map((b) => ({ topic, ...b }));
          if (behind.length > 0) positionsWentBack(new StoredPositionsWentBack(behind));
        },
      };
    },
    onIdleGap: async (partition, from, to) => {
      // Only when this process's position agrees: a fetch may have reported the gap meanwhile.
      if ((await positions.positionOf(partition)) === from && !health.isStoppedAtGap(partition)) await onRetentionGap(partition, from, to);
    },
    logger,
  });
  const onRewound = (partition: number, nextOffset: bigint) => kafkaCommits.rewound({ topic, partition, nextOffset });
  const onLogReset = logResetHandler({ pool, groupId, topic, consumer, positions, laneOf, metrics, logger, onRewound });
  const isApplied = (partition: number, record: KafkaMessage) => isAppliedRecord(pool, topic, partition, record);
  const warnCheckFailed = everyFewSeconds((count: number, err: unknown, partition: number, delayMs: number) =>
    logger.warn(
      { err, code: failureCode(err), partition, delayMs, count },
      'could not check a fetch against its stored position; trying again, nothing taken meanwhile (an outage of Postgres or Kafka passes; a code that repeats on every attempt is a setting to fix)',
    ),
  );
  const onCheckFailed = (err: unknown, partition: number, delayMs: number) => warnCheckFailed(err, partition, delayMs);
  const eachBatch = createBatchHandler({ topic, consumer, positions, onRetentionGap, onLogReset, laneOf, metrics, maxBatchEvents: config.ingest.maxBatchEvents, isApplied, commitBuffered, onCheckFailed });
  const onFatal = (err: Error) => {
    running = false;
    failWith(err);
  };
  // Kafka's trailing commits start again from each join's positions: commits of the member's
  // last generation may have been refused or dropped (kafkajs's restarted runner takes commits
  // as done, committing nothing, until it has joined), and an idle partition sends no other.
  const onResumed = (stored: ReadonlyMap<number, bigint>) => kafkaCommits.note([...stored].map(([partition, nextOffset]) => ({ topic, partition, nextOffset })));
  watchGroupEvents(consumer, { topic, groupId, positions, health, metrics, logger, onFatal, commitBuffered, isStopping: () => stopping, onResumed });
  // The partitions vanished under the running consumer: the topic was deleted, and may be back
  // with a new log that has grown past the positions before the next fetch. kafkajs fetches on
  // from its positions without rejoining, so check each partition's last record as on a join.
  // Once per 5 s at most: the broker answers so to every request while the topic is gone. The
  // seeks and checks set up here wait for the first fetch that works, so one run is enough.
  const recheck = sharedProbe(async () => {
    const assigned = health.assignedPartitions();
    await resumeFromPostgres(consumer, topic, positions, assigned, commitBuffered, {
      isStopping: () => stopping,
      onRetry: (err, delayMs) => logger.warn({ err, delayMs }, 'could not load the stored positions to check them again; trying again (fetches wait, heartbeats go on)'),
    });
    logger.warn({ topic, partitions: assigned }, 'the topic\'s partitions were unknown to the broker (deleted, maybe created again): checking the record before each position against what was applied');
  }, 5_000);
  deps.watchKafkaErrors?.((message) => {
    if (TOPIC_GONE.test(message) && running) recheck().catch((err: unknown) => logger.warn({ err }, 'could not check the positions again'));
  });
  watchFilteredRecords(consumer, { topic, positions, laneOf, metrics, logger });

  deps.healthReporting?.();
  await connectAndRun({ consumer, dlqProducer, admin }, topic, config.ingest.partitionsConcurrency, eachBatch);
  const relay = startDlqRelay({
    pool,
    sender: createDlqSender(dlqProducer, config.kafka.topics.dlq, deps.topicLimits.dlqMaxMessageBytes, logger, recreateDlq),
    topic,
    metrics,
    logger,
  });
  wakeDlqRelay = () => relay.wake();
  running = true;
  logger.info({ topic, groupId, mode: config.ingest.batchMode, lanes: lanes.length }, 'ingest running');

  const stop = async () => {
    if (stopping) return;
    stopping = true;
    monitor.stop();
    await logEnds.close();
    await stopConsuming({ topic, consumer, lanes, kafkaCommits, dlqRelay: relay, dlqProducer, admin, logger });
    running = false;
    logger.info('ingest stopped');
  };
  return {
    isRunning: () => running && !stopping,
    readiness: () => (running || stopping ? health.status() : { ready: false, reason: 'the consumer is not running' }),
    failed,
    stop,
  };
}

function createConsumer(kafka: Kafka, config: Config, isStopping: () => boolean): Consumer {
  useBoundedCodecs(); // batches compressed with any codec, within a budget
  return kafka.consumer({
    groupId: config.ingest.groupId,
    maxBytes: config.ingest.fetchMaxBytes,
    maxBytesPerPartition: config.ingest.partitionFetchMaxBytes,
    // How long a fetch waits for records when none are there (kafkajs's default is 5 s). A
    // fetch returns as soon as records arrive either way; this is how long an idle or paused
    // consumer takes to notice a stop or a rebalance (heartbeats go between fetches).
    maxWaitTimeInMs: 1000,
    sessionTimeout: config.ingest.sessionTimeoutMs,
    heartbeatInterval: Math.floor(config.ingest.sessionTimeoutMs / 10),
    // Partitions added to the topic are found when metadata is refreshed: kafkajs's default
    // of 5 minutes would leave their records waiting that long, unseen by the stall checks.
    metadataMaxAge: metadataMaxAgeMs(config.ingest.stallLimitMs),
    // The topics are made (and checked) at start-up; a topic deleted while running must not
    // come back with the broker's defaults (one partition, a DLQ too small for its copies).
    allowAutoTopicCreation: false,
    // Postgres, not Kafka, decides where to resume; do not let a retry storm rejoin early.
    // Not restarted once stopping: kafkajs's stop() does nothing while a restart is joining,
    // and the restarted consumer took partitions back that a stopped member never commits.
    retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 10_000, restartOnFailure: async () => !isStopping() },
  });
}

/** Half the stall limit, between 5 and 30 seconds: a new partition is joined well before its records count as stalled. */
export function metadataMaxAgeMs(stallLimitMs: number): number {
  return Math.min(30_000, Math.max(5_000, Math.floor(stallLimitMs / 2)));
}

/** Connects the admin, the DLQ producer and the consumer, then starts consuming `topic`. */
async function connectAndRun(
  clients: { consumer: Consumer; dlqProducer: Producer; admin: Admin },
  topic: string,
  partitionsConsumedConcurrently: number,
  eachBatch: (payload: EachBatchPayload) => Promise<void>,
): Promise<void> {
  const { consumer, dlqProducer, admin } = clients;
  await admin.connect();
  await dlqProducer.connect();
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({ eachBatchAutoResolve: false, autoCommit: false, partitionsConsumedConcurrently, eachBatch });
}

/**
 * How long a stopping member tries to commit what it buffered before it leaves the group
 * anyway. Longer than a takeover takes (the others notice a member left at their next
 * heartbeat, after a fetch's wait of 1 s at most, then rejoin), so in the common case nothing is
 * read twice; bounded, so a Postgres that does not answer cannot keep the partitions from
 * the rest of the group for ever. The commit goes on after the leave, until the command's
 * own stop deadline (src/cli/stop.ts).
 */
const HANDOVER_COMMIT_MS = 15_000;
/** How long a stopping member goes on sending the DLQ copies its last micro-batches quarantined; the rest wait in Postgres for the next run or another member. */
const DLQ_RELAY_STOP_MS = 5_000;
/** How long a stopping member tries to commit its last offsets to Kafka: they serve Kafka's tools only, and the partitions wait for the leave. */
const KAFKA_COMMITS_STOP_MS = 2_000;

/**
 * Fetch no more, then commit what is buffered, then leave the group: members that take our
 * partitions over start from the offsets in Postgres, which then include everything we took
 * (and quarantine has each reject once, its DLQ copy sent or waiting). kafkajs's stop() leaves the group as soon as the
 * fetch in flight ends, so the commit comes first, while the partitions are paused.
 */
async function stopConsuming(parts: { topic: string; consumer: Consumer; lanes: MicroBatcher[]; kafkaCommits: TrailingKafkaCommits; dlqRelay: DlqRelay; dlqProducer: Producer; admin: Admin; logger: Logger }): Promise<void> {
  const { topic, consumer, lanes, kafkaCommits, dlqRelay, dlqProducer, admin, logger } = parts;
  const drainLanes = () => Promise.all(lanes.map((lane) => lane.drain()));
  try {
    consumer.pause([{ topic }]);
  } catch {
    // Not running (a crash kafkajs does not restart from stops it): nothing is fetched anyway.
  }
  await withTimeout(drainLanes(), HANDOVER_COMMIT_MS).catch((err: unknown) =>
    logger.warn({ err }, 'could not commit the buffered records before leaving the group; whoever takes the partitions over reads them again'),
  );
  // Before the leave: Kafka takes commits only from a member of the group. What the lanes
  // commit after it reaches Kafka with the next owner's first commit.
  await kafkaCommits.stop(KAFKA_COMMITS_STOP_MS);
  await consumer.stop(); // waits for the eachBatch in flight: its last slices are committed below
  await drainLanes().catch((err: unknown) => logger.warn({ err }, 'buffered records left uncommitted; the next run re-reads them'));
  await dlqRelay.stop(DLQ_RELAY_STOP_MS);
  await consumer.disconnect();
  await dlqProducer.disconnect();
  await admin.disconnect().catch(() => undefined);
}

/** Log start and high watermark per partition of `topic` (all partitions, or the ones given). */
async function topicWatermarks(admin: Admin, topic: string, partitions?: number[]): Promise<Map<number, Watermarks>> {
  const offsets = await admin.fetchTopicOffsets(topic);
  const wanted = partitions ? new Set(partitions) : undefined;
  return new Map(
    offsets.filter((o) => !wanted || wanted.has(o.partition)).map((o) => [o.partition, { low: BigInt(o.low), high: BigInt(o.high) }]),
  );
}

