/**
 * Kafka's committed offsets for the group, kept trailing Postgres: only offsets Postgres has
 * committed are committed to Kafka, at most once a second. They are a convenience for
 * Kafka's own tools (consumer-group lag), never where the consumer resumes (positions.ts);
 * kafkajs's own auto-commit is off because it commits what was fetched, ahead of Postgres.
 */
import type { Consumer } from 'kafkajs';
import type { Logger } from '../log';
import type { PartitionOffset } from '../store/hot-path/offsets';

const COMMIT_EVERY_MS = 1000;

export function trailingKafkaCommits(consumer: Consumer, logger: Logger): { note(offsets: PartitionOffset[]): void; stop(): void } {
  const pending = new Map<string, PartitionOffset>();
  let committing = false;
  const timer = setInterval(() => {
    if (committing || pending.size === 0) return;
    const offsets = [...pending.values()].map((o) => ({ topic: o.topic, partition: o.partition, offset: o.nextOffset.toString() }));
    pending.clear();
    committing = true;
    consumer
      .commitOffsets(offsets)
      .catch((err: unknown) => logger.debug({ err }, 'could not commit offsets to Kafka (a convenience only; Postgres holds the truth)'))
      .finally(() => (committing = false));
  }, COMMIT_EVERY_MS);
  timer.unref();
  return {
    note(offsets) {
      for (const o of offsets) {
        const key = `${o.topic}\t${o.partition}`;
        const seen = pending.get(key);
        if (!seen || seen.nextOffset < o.nextOffset) pending.set(key, o);
      }
    },
    stop: () => clearInterval(timer),
  };
}
