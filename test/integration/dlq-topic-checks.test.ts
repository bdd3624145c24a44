/**
 * What `hunt ingest` checks of an existing DLQ topic at start-up, on the real broker. A
 * compacted DLQ refuses every copy without a key (INVALID_RECORD, which no retry cures), so
 * one reject without a key held its partition's lane for ever, and compaction would drop
 * earlier copies that share a key.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log';
import { prepareTopics, TopicConfigError } from '../../src/ingest/topics';
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
