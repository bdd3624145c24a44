/**
 * The Kafka-range backfill's reader on a range larger than one fetch: it must move past
 * each fetch (kafkajs fetches from the last resolved offset), take at most what it is asked
 * for, and resume from the cursor it returns.
 */
import { describe, expect, it } from 'vitest';
import { consumeRange, resolveRange } from '../../src/batch/backfill/kafka-source';
import { createTestTopics, sendRecords, testKafka } from '../helpers/ingest';

describe('consumeRange', () => {
  it('reads a range of many fetches in calls of at most maxRecords, resuming from its cursor', async () => {
    const topics = await createTestTopics(2);
    // 24,000 records of about 400 bytes: about 5 MB, many 1 MB fetches per partition.
    const padding = 'x'.repeat(380);
    await sendRecords(topics.events, Array.from({ length: 24_000 }, (_, i) => ({ key: `k${i % 7}`, value: `${i}:${padding}` })));
    const kafka = testKafka();
    const range = await resolveRange(kafka, topics.events, undefined, undefined);
    const seen = new Set<string>();
    let cursor = range.start;
    const started = Date.now();
    for (let call = 0; call < 3; call++) {
      let taken = 0;
      cursor = await consumeRange(kafka, topics.events, cursor, range, 10_000, async ({ messages }) => {
        taken += messages.length;
        for (const m of messages) seen.add(m.value?.toString().split(':')[0] ?? '');
      }, new AbortController().signal);
      expect(taken).toBe(call < 2 ? 10_000 : 4000);
    }
    expect(seen.size).toBe(24_000);
    expect(cursor).toEqual(range.end);
    // Seconds, not the minutes of a reader that fetches the same records again and again.
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
