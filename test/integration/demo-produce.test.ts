/**
 * The demo producer at a high rate: a tick that catches up sends many records at once, and
 * one partition's share of a send travels as one record batch, which the broker refuses whole
 * past the topic's max.message.bytes (1 MiB by default). `hunt produce --count 200000 --rate
 * 20000` failed so ("message larger than the max message size"); sends are now cut by bytes.
 */
import { describe, expect, it } from 'vitest';
import { produceTraffic } from '../../src/demo/produce';
import { seededRandom, TrafficGenerator } from '../../src/demo/traffic';
import { createTestTopics, endOffsets, testKafka } from '../helpers/ingest';

describe('hunt produce at a high rate', () => {
  it('sends every record, however many bytes one tick catches up on', async () => {
    const topics = await createTestTopics(2);
    const count = 40_000;
    const generator = new TrafficGenerator({ hunts: 3, playersPerHunt: 50, random: seededRandom(7) });
    // At the highest rate taken the first tick is due 10,000 records (about 1 MiB for each
    // partition), and a tick after a slow send up to 20,000 (the most one tick builds).
    const sent = await produceTraffic(testKafka(), generator, { topic: topics.events, rate: 1_000_000, count });
    expect(sent).toBe(count);
    expect(await endOffsets(topics.events)).toBe(count);
  });
});
