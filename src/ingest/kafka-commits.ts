/**
 * Kafka's committed offsets for the group, kept trailing Postgres: only offsets Postgres has
 * committed are committed to Kafka, at most once a second. They are a convenience for
 * Kafka's own tools (consumer-group lag), never where the consumer resumes (positions.ts);
 * kafkajs's own auto-commit is off because it commits what was fetched, ahead of Postgres.
 *
 * Only the partitions this member owns are committed: the group takes a commit from any
 * member of its generation, so a lane's commit landing after a rebalance would put the new
 * owner's newer offset back. A commit Kafka refused (it refuses them during every rebalance)
 * is sent again at a later tick: a partition that then goes idle would show lag for good.
 */
import type { Consumer } from 'kafkajs';
import type { Logger } from '../log';
import type { PartitionOffset } from '../store/hot-path/offsets';
import { withTimeout } from '../time-limit';

const COMMIT_EVERY_MS = 1000;

export interface KafkaCommitDeps {
  consumer: Pick<Consumer, 'commitOffsets'>;
  logger: Logger;
  /** The partitions of the topic this member owns now (its last join's assignment). */
  assignedPartitions: () => readonly number[];
}

export interface TrailingKafkaCommits {
  /** Offsets Postgres committed: the newest of each partition goes to Kafka at the next tick. */
  note(offsets: readonly PartitionOffset[]): void;
  /** Postgres's position moved back (a log reset): this offset goes to Kafka instead of any higher one pending or being sent. */
  rewound(offset: PartitionOffset): void;
  /** Ends the ticks, then sends what is pending within `withinMs`: the last commits before the member leaves its group. */
  stop(withinMs: number): Promise<void>;
}

export function trailingKafkaCommits({ consumer, logger, assignedPartitions }: KafkaCommitDeps): TrailingKafkaCommits {
  const pending = new Map<string, PartitionOffset>();
  let inFlight: Promise<void> | undefined;
  const keyOf = (o: PartitionOffset) => `${o.topic}\t${o.partition}`;

  /** Pending unless its partition is no longer this member's, or a newer offset of it is pending. */
  const keep = (offsets: readonly PartitionOffset[]) => {
    const owned = new Set(assignedPartitions());
    for (const o of offsets) {
      if (!owned.has(o.partition)) continue;
      const key = keyOf(o);
      const seen = pending.get(key);
      if (!seen || seen.nextOffset < o.nextOffset) pending.set(key, o);
    }
  };

  // Never rejects: what Kafka refused is pending again.
  const send = async (): Promise<void> => {
    // Filtered again: the assignment may have changed since these offsets were noted.
    const owned = new Set(assignedPartitions());
    const sent = [...pending.values()].filter((o) => owned.has(o.partition));
    pending.clear();
    if (sent.length === 0) return;
    try {
      await consumer.commitOffsets(sent.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.nextOffset.toString() })));
    } catch (err) {
      logger.debug({ err }, 'could not commit offsets to Kafka; trying again (a convenience only; Postgres holds the truth)');
      // Pending again unless an offset of its partition was noted or rewound meanwhile: that
      // one is newer, or must win.
      const ownedNow = assignedPartitions();
      for (const o of sent) if (ownedNow.includes(o.partition) && !pending.has(keyOf(o))) pending.set(keyOf(o), o);
    }
  };

  // One commit at a time: two in flight could land out of order, the older last.
  const timer = setInterval(() => {
    inFlight ??= send().finally(() => (inFlight = undefined));
  }, COMMIT_EVERY_MS);
  timer.unref();

  return {
    note: keep,
    rewound(offset) {
      // Lower than what was noted, and it must win: the old log's position, noted at the join
      // or by the lanes before the reset, left in Kafka would point past the new log's end.
      if (!assignedPartitions().includes(offset.partition)) return;
      pending.set(keyOf(offset), offset);
    },
    async stop(withinMs) {
      clearInterval(timer);
      // After the commit in flight: what Kafka refused of it is sent again.
      const flushed = (inFlight ?? Promise.resolve()).then(send);
      await withTimeout(flushed, withinMs).catch((err: unknown) =>
        logger.warn({ err }, 'could not commit the last offsets to Kafka before leaving the group; Kafka\'s tools show lag until the next owner commits (Postgres holds the truth)'),
      );
    },
  };
}
