/**
 * What `hunt ingest` checks of an existing DLQ topic at start-up, on the real broker. A
 * compacted DLQ refuses every copy without a key (INVALID_RECORD, which no retry cures), so
 * one reject without a key held its partition's lane for ever, and compaction would drop
 * earlier copies that share a key.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createLogger, type Logger } from '../../src/log';
import { DEFAULT_PARTITIONS, DLQ_HEADROOM_BYTES, prepareTopics, TopicConfigError } from '../../src/ingest/topics';
import { BROKER_MAX_MESSAGE_BYTES, testKafka } from '../helpers/ingest';
import { uniqueName } from '../helpers/wait';

const kafka = testKafka();
const admin = kafka.admin();
const created: string[] = [];
afterAll(async () => {
  if (created.length > 0) await admin.deleteTopics({ topics: created });
  await admin.disconnect();
});

describe('an existing DLQ topic', () => {
  it('is refused when compacted, naming the setting and the fix, even on a broker we may alter', async () => {
    const events = uniqueName('dlqcheck-events');
    const dlq = uniqueName('dlqcheck-dlq');
    await admin.connect();
    await admin.createTopics({
      topics: [
        { topic: events, numPartitions: 1 },
        { topic: dlq, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact,delete' }, { name: 'max.message.bytes', value: String(2 * BROKER_MAX_MESSAGE_BYTES) }] },
      ],
      waitForLeaders: false,
    });
    created.push(events, dlq);
    const logger = createLogger({ logLevel: 'fatal' });
    for (const mayAlterDlq of [false, true]) {
      const prepared = prepareTopics(kafka, { events, dlq }, { mayAlterDlq, logger });
      await expect(prepared).rejects.toThrow(TopicConfigError);
      await expect(prepared).rejects.toThrow(new RegExp(`Kafka topic ${dlq} has cleanup\\.policy=compact,delete; a DLQ must keep every copy.*--add-config cleanup\\.policy=delete`));
    }
  });
});

describe('a DLQ topic that cannot be made', () => {
  it('is logged as an error, and start-up goes on sized for the input topic (the relay keeps the copies)', async () => {
    const base = uniqueName('dlqcheck');
    const events = `${base}-events`;
    // Kafka refuses a name that differs from an existing one only by '.' against '_'.
    const taken = `${base}.dlq`;
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: events, numPartitions: 1 }, { topic: taken, numPartitions: 1 }], waitForLeaders: true });
    created.push(events, taken);
    const error = vi.fn();
    const logger = { error, warn: vi.fn(), info: vi.fn() } as unknown as Logger;
    const prepared = await prepareTopics(kafka, { events, dlq: `${base}_dlq` }, { mayAlterDlq: false, logger });
    expect(prepared).toEqual({ inputMaxMessageBytes: BROKER_MAX_MESSAGE_BYTES, dlqMaxMessageBytes: BROKER_MAX_MESSAGE_BYTES + DLQ_HEADROOM_BYTES });
    expect(error).toHaveBeenCalledTimes(1);
    expect(error.mock.calls[0]?.[1]).toMatch(/could not create the DLQ topic; starting anyway/);
    expect(await admin.listTopics()).not.toContain(`${base}_dlq`);
  });

  it('made by another member starting at the same time is read, not refused', async () => {
    const events = uniqueName('dlqcheck-race-events');
    const dlq = uniqueName('dlqcheck-race-dlq');
    created.push(events, dlq);
    const error = vi.fn();
    const logger = { error, warn: vi.fn(), info: vi.fn() } as unknown as Logger;
    const both = await Promise.all([1, 2, 3].map(() => prepareTopics(kafka, { events, dlq }, { mayAlterDlq: false, logger })));
    const expected = {
      inputMaxMessageBytes: BROKER_MAX_MESSAGE_BYTES,
      dlqMaxMessageBytes: BROKER_MAX_MESSAGE_BYTES + DLQ_HEADROOM_BYTES,
      dlqShape: { partitions: DEFAULT_PARTITIONS, overrides: [] }, // as made, whichever member made it
    };
    expect(both).toEqual([expected, expected, expected]);
    expect(error).not.toHaveBeenCalled(); // read as made, not taken for one that cannot be
  });
});
