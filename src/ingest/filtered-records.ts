/**
 * Records kafkajs steps over by itself: the control record a transactional producer's commit
 * or abort leaves in the log, and the records of an aborted transaction (kafkajs reads
 * committed only). A fetch of nothing else never reaches eachBatch; kafkajs moves on and
 * fetches after them. Without this watch the next fetch would start past the Postgres
 * position and be sought back, forever when the records after a marker do not fit in the same
 * fetch, and a log ending in a marker would look like a partition with a record waiting.
 *
 * kafkajs reports such a fetch as a batch of no records; when it covers the partition's
 * position, the position moves past it, and the new offset goes to Postgres through the
 * partition's commit lane, after the slices buffered before it (offsets never move back).
 */
import type { Consumer } from 'kafkajs';
import type { Logger } from '../log';
import { positionOnlyWork, type MicroBatcher } from './batcher';
import type { IngestMetrics } from './metrics';
import type { PartitionPositions } from './positions';

export interface FilteredRecordsDeps {
  topic: string;
  positions: PartitionPositions;
  laneOf: (partition: number) => MicroBatcher;
  metrics: IngestMetrics;
  logger: Logger;
}

export function watchFilteredRecords(consumer: Consumer, deps: FilteredRecordsDeps): void {
  const { topic, positions, laneOf, metrics, logger } = deps;
  consumer.on(consumer.events.START_BATCH_PROCESS, ({ payload }) => {
    // firstOffset is null when the fetch held nothing at or after where it started.
    const firstOffset = payload.firstOffset as string | null;
    if (payload.topic !== topic || payload.batchSize !== 0 || firstOffset === null) return;
    const { partition } = payload;
    const passed = positions.passFiltered(partition, BigInt(firstOffset), BigInt(payload.lastOffset));
    if (passed === undefined) return;
    const nextOffset = passed.to;
    // Counted, so what was passed unseen can be checked against the producers' aborted transactions.
    metrics.filteredRecordsPassed.inc({ topic, partition: String(partition) }, Number(passed.to - passed.from));
    logger.debug({ topic, partition, firstOffset, lastOffset: payload.lastOffset }, 'passed transaction markers or aborted records');
    // Not awaited (an event listener cannot hold kafkajs back), so its order behind the
    // partition's earlier slices rests on the lane taking add() calls first come, first
    // served, also while it is full: MicroBatcher's waiters wake in order. Keep it so.
    laneOf(partition)
      .add(positionOnlyWork(topic, partition, nextOffset, BigInt(payload.highWatermark)))
      // Only a lane already failed for good refuses work; that failure is reported where it happened.
      .catch((err: unknown) => logger.debug({ err, topic, partition }, 'offset past filtered records not buffered'));
  });
}
