/**
 * Kafka's committed offsets trail the positions Postgres holds, for Kafka's own tools. A join
 * sends the positions it resumes from: commits a member's last generation made may never have
 * reached Kafka (refused in a rebalance, or taken as done by kafkajs's restarted runner, which
 * commits nothing until it has joined), and an idle partition sends no other. Here Kafka's
 * offsets are put back behind Postgres's while no member runs; a member joining an idle topic
 * must bring them up to Postgres's.
 */
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database-fixture';
import { createTestTopics, endOffsets, startIngestProcess, testKafka, waitCaughtUp } from '../helpers/ingest';
import { eventsFor, send } from '../helpers/ingest-faults';
import { waitFor } from '../helpers/wait';

const db = useTestDatabase();

describe("Kafka's committed offsets after a join", () => {
  it("are brought up to the positions Postgres holds, with no record to read", { timeout: 120_000 }, async () => {
    const topics = await createTestTopics(2);
    await send(topics.events, eventsFor('kc', 200));
    const first = startIngestProcess(db.url, topics);
    try {
      await first.ready();
      await waitCaughtUp(db.pool, topics);
    } finally {
      await first.kill('SIGTERM');
    }
    const end = await endOffsets(topics.events);

    // Kafka's offsets put back to 0 while the group is empty, as commits that never landed leave them.
    const admin = testKafka().admin();
    await admin.connect();
    try {
      await admin.setOffsets({ groupId: topics.groupId, topic: topics.events, partitions: [0, 1].map((partition) => ({ partition, offset: '0' })) });
      const committed = async () =>
        (await admin.fetchOffsets({ groupId: topics.groupId, topics: [topics.events] }))[0]!.partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
      expect(await committed()).toBe(0);

      const second = startIngestProcess(db.url, topics);
      try {
        await second.ready();
        // Nothing to read: only the join's positions can move Kafka's offsets.
        await waitFor("Kafka's offsets to reach Postgres's", async () => (await committed()) === end, { timeoutMs: 30_000, intervalMs: 250 });
      } finally {
        await second.kill('SIGTERM');
      }
    } finally {
      await admin.disconnect();
    }
  });
});
