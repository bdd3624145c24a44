/**
 * Which Kafka topics a backfill may read (BACKFILL_TOPICS; by default only the input topic).
 * A job input is typed by hand in the Temporal UI: without this, whoever may start a job
 * could copy any topic the worker's Kafka user can read into the store, valid records onto
 * the leaderboards and every other record byte for byte into quarantine.
 */

/** A topic the job must not read; the message says what to fix. */
export class ImportTopicError extends Error {
  override readonly name = 'ImportTopicError';
}

/** Each pattern is a topic name, or a prefix ending in `*` (`archive.*`). */
export function topicAllowed(patterns: readonly string[], topic: string): boolean {
  return patterns.some((p) => (p.endsWith('*') ? topic.startsWith(p.slice(0, -1)) : topic === p));
}

/** Throws an ImportTopicError unless `topic` is one a backfill may read. */
export function checkImportTopic(patterns: readonly string[], topic: string): void {
  if (topicAllowed(patterns, topic)) return;
  throw new ImportTopicError(
    `Kafka topic ${topic} is not one a backfill may read (BACKFILL_TOPICS: ${patterns.join(',')}); read one of those, or ask an operator to add it to BACKFILL_TOPICS on the workers`,
  );
}
