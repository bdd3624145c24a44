/**
 * What the consumer does when retention deleted records of a partition before they were
 * read: count and log the loss, then stop the partition or go on from the log start
 * (INGEST_ON_RETENTION_GAP).
 */
import type { Consumer } from 'kafkajs';
import type pg from 'pg';
import type { Logger } from '../log';
import { storeOffsets } from '../store/hot-path/offsets';
import { withTransaction } from '../store/transaction';
import type { IngestHealth } from './health';
import type { IngestMetrics } from './metrics';
import type { OnRetentionGap, PartitionPositions } from './positions';

export interface RetentionGapDeps {
  pool: pg.Pool;
  groupId: string;
  topic: string;
  policy: OnRetentionGap;
  consumer: Consumer;
  positions: PartitionPositions;
  health: IngestHealth;
  metrics: IngestMetrics;
  logger: Logger;
}

/** Records lost are offsets [from, to); resolves true when the partition goes on from the log start. */
export type RetentionGapHandler = (partition: number, from: bigint, to: bigint) => Promise<boolean>;

export function retentionGapHandler(deps: RetentionGapDeps): RetentionGapHandler {
  const { pool, groupId, topic, policy, consumer, positions, health, metrics, logger } = deps;
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
    // takes the log start instead of reporting the gap again; recorded at once, so the gap is
    // reported once, not again after a restart.
    positions.skipTo(partition, to);
    await withTransaction(pool, (client) => storeOffsets(client, groupId, [{ topic, partition, nextOffset: to, floor: positions.floorOf(partition) }]));
    return true;
  };
}
