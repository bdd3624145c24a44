/**
 * The consumer group's events: on joining, note the assigned partitions and seek each to its
 * Postgres position; on leaving (a rebalance, a crash kafkajs restarts from), note it for
 * readiness; on a crash kafkajs does not restart from, report it as fatal.
 */
import type { Consumer } from 'kafkajs';
import type { Logger } from '../log';
import type { IngestHealth } from './health';
import type { IngestMetrics } from './metrics';
import type { PartitionPositions, ResumeHooks } from './positions';

export interface GroupEventDeps {
  topic: string;
  groupId: string;
  positions: PartitionPositions;
  health: IngestHealth;
  metrics: IngestMetrics;
  logger: Logger;
  /** The consumer died for good. */
  onFatal: (err: Error) => void;
  /** Commits what the lanes buffered (bounded): a join's positions must include it. */
  commitBuffered: () => Promise<void>;
  /** The member is leaving: a join completing now needs no positions. */
  isStopping: () => boolean;
  /** A join's positions, loaded from Postgres: where the member resumes each partition it was assigned. */
  onResumed?: (stored: ReadonlyMap<number, bigint>) => void;
}

export function watchGroupEvents(consumer: Consumer, deps: GroupEventDeps): void {
  const { topic, groupId, positions, health, metrics, logger } = deps;
  consumer.on(consumer.events.GROUP_JOIN, async ({ payload }) => {
    const assigned = payload.memberAssignment[topic] ?? [];
    health.setAssignment(assigned);
    metrics.partitionsAssigned.reset();
    for (const partition of assigned) metrics.partitionsAssigned.set({ topic, partition: String(partition) }, 1);
    if (deps.isStopping()) return;
    try {
      const stored = await resumeFromPostgres(consumer, topic, positions, assigned, deps.commitBuffered, {
        isStopping: deps.isStopping,
        onRetry: (err, delayMs) => logger.warn({ err, delayMs }, 'could not load the stored positions after a join; trying again (fetches wait, heartbeats go on)'),
      });
      logger.info({ groupId, assigned, resumeFrom: Object.fromEntries([...stored].map(([p, o]) => [p, o.toString()])) }, 'joined group');
      deps.onResumed?.(stored);
    } catch (err) {
      // A newer join took over, or the member is stopping.
      logger.info({ err }, 'left the positions of a join unloaded: a newer join or a stop took over');
    }
  });
  // Out of the group until the next GROUP_JOIN: readiness turns red if that takes too long.
  consumer.on(consumer.events.REBALANCING, () => health.markOutOfGroup());
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    // Not restarted because the member is stopping (consumer.ts): the end of a stop, not a fault.
    if (!payload.restart && deps.isStopping()) {
      logger.info({ err: payload.error }, 'consumer ended during the stop');
      return;
    }
    metrics.consumerCrashes.inc({ restart: String(payload.restart) });
    if (payload.restart) {
      health.markOutOfGroup();
      logger.warn({ err: payload.error }, 'consumer crashed; kafkajs restarts it');
      return;
    }
    logger.error({ err: payload.error }, 'consumer crashed and will not restart');
    health.markCrashed('the Kafka consumer crashed and does not restart (see the log)');
    deps.onFatal(new Error(`the Kafka consumer crashed: ${payload.error.message}`, { cause: payload.error }));
  });
}

/**
 * Commits what the lanes buffered, then seeks each partition to its Postgres position, one
 * record before it where there is one, so the record there is checked against what was
 * applied before anything after it is taken (positions.ts, resume); fetches wait until then.
 * Resolves the positions loaded.
 */
export function resumeFromPostgres(
  consumer: Consumer,
  topic: string,
  positions: PartitionPositions,
  partitions: readonly number[],
  commitBuffered: () => Promise<void>,
  retry: Pick<ResumeHooks, 'isStopping' | 'onRetry'> = {},
): Promise<Map<number, bigint>> {
  return positions.resume(partitions, { commitBuffered, seek: (partition, offset) => consumer.seek({ topic, partition, offset: offset.toString() }), ...retry });
}
