/**
 * What the consumer does when retention deleted records of a partition before they were
 * read: count and log the loss, then stop the partition or go on from the log start
 * (INGEST_ON_RETENTION_GAP).
 */
import type { Consumer } from 'kafkajs';
import type { Logger } from '../log';
import { positionOnlyWork, type MicroBatcher } from './batcher';
import type { IngestHealth } from './health';
import type { IngestMetrics } from './metrics';
import type { OnRetentionGap, PartitionPositions } from './positions';

export interface RetentionGapDeps {
  topic: string;
  policy: OnRetentionGap;
  consumer: Consumer;
  positions: PartitionPositions;
  laneOf: (partition: number) => MicroBatcher;
  health: IngestHealth;
  metrics: IngestMetrics;
  logger: Logger;
}

/** Records lost are offsets [from, to); resolves true when the partition goes on from the log start. */
export type RetentionGapHandler = (partition: number, from: bigint, to: bigint) => Promise<boolean>;

export function retentionGapHandler(deps: RetentionGapDeps): RetentionGapHandler {
  const { topic, policy, consumer, positions, laneOf, health, metrics, logger } = deps;
  return async (partition, from, to) => {
    const lost = to - from;
    metrics.retentionGapRecords.inc({ topic, partition: String(partition) }, Number(lost));
    const stop = policy === 'stop';
    logger.error(
      { topic, partition, firstLostOffset: from.toString(), lastLostOffset: (to - 1n).toString(), lost: lost.toString(), policy },
      `retention deleted ${lost} records of ${topic}/${partition} before they were read; ${stop ? 'consumption of the partition stopped (INGEST_ON_RETENTION_GAP=stop)' : 'continuing from the log start'}`,
    );
    if (stop) {
      consumer.pause([{ topic, partitions: [partition] }]);
      health.markStoppedAtGap(partition, `partition ${partition} lost ${lost} records to retention (offsets ${from}-${to - 1n}) and is stopped (INGEST_ON_RETENTION_GAP=stop)`);
      return false;
    }
    // Moved first, so a fetch checked meanwhile (the monitor reports gaps of idle partitions)
    // takes the log start instead of reporting the gap again. Stored through the partition's
    // lane, after the slices it buffered before the gap (they end at `from`): stored at once,
    // in a transaction of its own, the skip passed them while they waited uncommitted, and a
    // crash (or a rebalance whose handover commit timed out) lost them, unread by anyone.
    // Not awaited, as filtered-records.ts: the lane takes add() calls in order, and the
    // monitor's tick, which reports a gap too, must not wait for room in a busy lane. Its
    // high watermark is the skip's end: the lag the flush reports for it is the monitor's next.
    positions.skipTo(partition, to);
    laneOf(partition)
      .add(positionOnlyWork(topic, partition, to, to))
      // Only a lane already failed for good refuses work; that failure is reported where it happened.
      .catch((err: unknown) => logger.debug({ err, topic, partition }, 'offset past a retention gap not buffered'));
    return true;
  };
}
