/**
 * Partitions added to the input topic while `hunt ingest` runs, on the real broker: their
 * records are applied within the stall limit, even with INGEST_START_FROM=latest. Before,
 * kafkajs learned of the new partition only at its 5-minute metadata refresh, nothing counted
 * the wait as a stall, and `latest` then started the partition past the records written
 * meanwhile: they were never applied.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { useTestDatabase } from '../helpers/database-fixture';
import { atSecond, joined } from '../helpers/event-builders';
import { createTestTopics, startIngestProcess, testKafka, type IngestProcess, type TestTopics } from '../helpers/ingest';
import { waitFor } from '../helpers/wait';

const STALL_LIMIT_MS = 10_000;
const db = useTestDatabase();
let topics: TestTopics;
let ingest: IngestProcess;
const admin = testKafka().admin();
// Idempotent: a send retried just after the partitions were added (their leaders still
// moving) must not write its records twice, or the offsets below are not the ones sent.
const producer = testKafka().producer({ idempotent: true, maxInFlightRequests: 1 });

beforeAll(async () => {
  topics = await createTestTopics(1);
  ingest = startIngestProcess(db.url, topics, { INGEST_START_FROM: 'latest', INGEST_STALL_LIMIT_MS: String(STALL_LIMIT_MS) });
  await Promise.all([ingest.ready(), admin.connect(), producer.connect()]);
}, 120_000);

afterAll(async () => {
  await ingest?.kill('SIGTERM');
  await Promise.all([admin.disconnect(), producer.disconnect()]);
});

const event = (eventId: string, i: number): HuntEvent => joined({ eventId, huntId: 'hunt-1', playerId: `p${i}`, occurredAt: atSecond(i) });
const sendTo = (partition: number, events: HuntEvent[]) =>
  producer.send({ topic: topics.events, messages: events.map((e) => ({ key: e.huntId, value: JSON.stringify(e), partition })) });
const applied = async (prefix: string) => (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE event_id LIKE $1', [`${prefix}%`])).rows[0]?.n;

describe('a partition added while ingest runs', () => {
  it('has every record applied, from its log start, within the stall limit', async () => {
    // /readyz answers before the group's first join; with `latest`, a record sent before the
    // join records the start would be skipped, as the setting says. Send after it.
    await waitFor('the start recorded', async () => (await db.pool.query('SELECT 1 FROM consumer_offsets WHERE group_id = $1', [topics.groupId])).rowCount === 1, { timeoutMs: 60_000, intervalMs: 100 });
    await sendTo(0, [event('first-0', 0)]);
    await waitFor('the first event', async () => (await applied('first-')) === 1, { timeoutMs: 30_000 });

    await admin.createPartitions({ topicPartitions: [{ topic: topics.events, count: 2 }] });
    // A producer that knew the topic before drops records for a partition its metadata lacks, without an error.
    await producer.disconnect();
    await producer.connect();
    await sendTo(1, Array.from({ length: 30 }, (_, i) => event(`added-${i}`, i)));
    expect((await admin.fetchTopicOffsets(topics.events)).find((p) => p.partition === 1)?.high).toBe('30');

    // Within twice the stall limit: the consumer's metadata refresh (half the limit), a rejoin, a commit.
    await waitFor('the added partition\'s events', async () => (await applied('added-')) === 30, { timeoutMs: 2 * STALL_LIMIT_MS + 15_000 });
    const { rows } = await db.pool.query<{ partition: number; next_offset: string }>(
      'SELECT partition, next_offset::text FROM consumer_offsets WHERE group_id = $1 ORDER BY partition',
      [topics.groupId],
    );
    expect(rows).toEqual([{ partition: 0, next_offset: '1' }, { partition: 1, next_offset: '30' }]);
  }, 120_000);
});
