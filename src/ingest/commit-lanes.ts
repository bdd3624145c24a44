/**
 * The hot path's commit side: the partitions' commit lanes, the flush each lane runs, and
 * the health that watches them. Built once per consumer by startIngest (consumer.ts).
 */
import type pg from 'pg';
import type { Config } from '../config';
import type { Logger } from '../log';
import type { PartitionOffset, StoredPositionsWentBack } from '../store/hot-path/offsets';
import { MicroBatcher } from './batcher';
import { createFlush } from './flush';
import type { FreshnessTally } from './freshness-tally';
import { IngestHealth } from './health';
import type { IngestMetrics } from './metrics';
import { BatchSizing } from './sizing';
import type { KnownEvents } from './known-events';
import type { PreparedTopics } from './topics';

export interface CommitLaneDeps {
  config: Config;
  pool: pg.Pool;
  metrics: IngestMetrics;
  logger: Logger;
  /** Limits read from the topics at start-up (prepareTopics). */
  topicLimits: PreparedTopics;
  /** Counts events within the freshness SLO's target (service.ts stores them). */
  freshness?: FreshnessTally;
  /** When the process began starting (performance.now()): not yet in its group since then, as far as readiness goes. */
  startedAt?: number;
}

export interface CommitLanes {
  lanes: MicroBatcher[];
  /** The lane of a partition: always the same one, so its micro-batches commit in order. */
  laneOf(partition: number): MicroBatcher;
  health: IngestHealth;
}

/** What the lanes tell the consumer, and ask it. */
export interface CommitLaneHooks {
  isStopping: () => boolean;
  /** Offsets now in Postgres (for Kafka's trailing committed offsets). */
  onCommitted: (offsets: PartitionOffset[]) => void;
  /** Rejects were quarantined: their DLQ copies wait for the relay. */
  onRejectsQuarantined: () => void;
  /** The position Postgres is known to hold at least for a partition. */
  floorOf?: (partition: number) => bigint | undefined;
  /** Postgres lost commits: the consumer must stop. */
  onPositionsWentBack?: (err: StoredPositionsWentBack) => void;
  /** The eventIds committed lately, shared by the lanes (known-events.ts). */
  knownEvents: KnownEvents;
}

export function createCommitLanes(deps: CommitLaneDeps, hooks: CommitLaneHooks): CommitLanes {
  const { config, pool, metrics, logger } = deps;
  const sizing = new BatchSizing({ mode: config.ingest.batchMode, ...config.ingest });
  metrics.batchTarget.set(sizing.targetRecords);
  const flush = createFlush({
    pool,
    groupId: config.ingest.groupId,
    metrics,
    logger,
    sizing,
    ...hooks,
    freshness: deps.freshness,
  });
  // Lanes commit concurrently, each on its own connection, so Postgres can use more than one
  // core. A partition always maps to the same lane: its micro-batches commit in order, one
  // at a time. Records are keyed by huntId (CONTRACT.md), so lanes touch disjoint hunts and
  // do not wait on each other's fence rows; a producer that keys otherwise, or reuses eventIds
  // across hunts, makes them wait for each other, never deadlock (the fences are taken
  // sorted, the events' key in eventId order: apply-events.ts).
  const lanes = Array.from({ length: config.ingest.commitLanes }, () => new MicroBatcher(sizing, flush));
  const laneOf = (partition: number) => lanes[partition % lanes.length] as MicroBatcher;
  const health: IngestHealth = new IngestHealth({
    stallLimitMs: config.ingest.stallLimitMs,
    lanes,
    partitionsOfLane: (lane) => health.assignedPartitions().filter((p) => p % lanes.length === lane),
    metrics,
  }, deps.startedAt);
  return { lanes, laneOf, health };
}
