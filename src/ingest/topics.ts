/** Creates the input and dead-letter topics when missing (idempotent). */
import type { Kafka } from 'kafkajs';

export const DEFAULT_PARTITIONS = 4;

export async function ensureTopics(kafka: Kafka, topics: string[], numPartitions = DEFAULT_PARTITIONS): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length > 0) {
      await admin.createTopics({ topics: missing.map((topic) => ({ topic, numPartitions })), waitForLeaders: true });
    }
  } finally {
    await admin.disconnect();
  }
}
