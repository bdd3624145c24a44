/**
 * What the consumer does when a partition's log ends before the position Postgres holds: the
 * topic was deleted and created again, or an unclean leader election truncated the log. The
 * broker answers "offset out of range" and kafkajs starts over at the log start, but left to
 * itself the position check would seek back to the old position every time, and once the new
 * log grew past it, consume from there: the new log's records below it would never be read.
 *
 * The partition is read again from the log start instead: eventIds make every record already
 * applied a no-op duplicate, so nothing is lost and nothing counts twice. First the lane
 * commits what it holds of this partition, a position-only work still waiting for room too
 * (so no older offset lands after the rewind; not what other partitions of the lane add,
 * which could keep coming), then the stored
 * position moves back (the one move backwards, and only while it still lies past the log
 * end), and the reset is logged at error and counted.
 */
import type { Consumer } from 'kafkajs';
import type pg from 'pg';
import type { Logger } from '../log';
import { rewindOffset } from '../store/hot-path/offsets';
import { withTransaction } from '../store/transaction';
import type { MicroBatcher } from './batcher';
import type { IngestMetrics } from './metrics';
import type { PartitionPositions } from './positions';

export interface LogResetDeps {
  pool: pg.Pool;
  groupId: string;
  topic: string;
  consumer: Consumer;
  positions: PartitionPositions;
  laneOf: (partition: number) => MicroBatcher;
  metrics: IngestMetrics;
  logger: Logger;
  /** The stored position moved back to `nextOffset` (Kafka's trailing commits follow it down). */
  onRewound?: (partition: number, nextOffset: bigint) => void;
}

export type LogReset = {
  partition: number;
  /** The position Postgres (or this process) held. */
  position: bigint;
  logStart: bigint;
} & (
  /** The log ends before the position. */
  | { logEnd: bigint }
  /** The log reaches the position but holds another record at this offset than the one applied (checked after a join). */
  | { replacedAt: bigint }
);

export type LogResetHandler = (reset: LogReset) => Promise<void>;

export function logResetHandler(deps: LogResetDeps): LogResetHandler {
  const { pool, groupId, topic, consumer, positions, laneOf, metrics, logger } = deps;
  return async (reset) => {
    const { partition, position, logStart } = reset;
    const what =
      'logEnd' in reset
        ? `the log of ${topic}/${partition} ends at offset ${reset.logEnd}, before the position ${position}`
        : `the record at ${topic}/${partition} offset ${reset.replacedAt} is not the one applied there (the position is ${position})`;
    // The stored position moves back only while it still lies past where the old log is known to end.
    const oldLogFrom = 'logEnd' in reset ? reset.logEnd : reset.replacedAt;
    await laneOf(partition).settled(partition);
    positions.lowerFloor(partition, logStart);
    await withTransaction(pool, (client) => rewindOffset(client, groupId, { topic, partition, nextOffset: logStart }, oldLogFrom));
    // Once the rewind committed: a reset tried again (Postgres unreachable) is one reset.
    logger.error(
      { topic, partition, position: position.toString(), logStart: logStart.toString(), oldLogFrom: oldLogFrom.toString() },
      `${what}: the topic was recreated or its log truncated; reading it again from offset ${logStart} (records already applied are duplicates and change nothing)`,
    );
    metrics.logResets.inc({ topic, partition: String(partition) });
    deps.onRewound?.(partition, logStart);
    positions.readAgainFrom(partition, logStart);
    consumer.seek({ topic, partition, offset: logStart.toString() });
  };
}
