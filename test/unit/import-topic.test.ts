import { describe, expect, it } from 'vitest';
import { checkImportTopic, ImportTopicError, topicAllowed } from '../../src/batch/backfill/import-topic';

describe('which topics a backfill may read', () => {
  it('takes exact names, and prefixes that end in *', () => {
    const patterns = ['hunt.events', 'archive.*'];
    expect(topicAllowed(patterns, 'hunt.events')).toBe(true);
    expect(topicAllowed(patterns, 'archive.2026-11')).toBe(true);
    expect(topicAllowed(patterns, 'archive.')).toBe(true);
    expect(topicAllowed(patterns, 'hunt.events.dlq')).toBe(false);
    expect(topicAllowed(patterns, 'hunt.event')).toBe(false);
    expect(topicAllowed(patterns, 'archive')).toBe(false);
    expect(topicAllowed(patterns, 'payments')).toBe(false);
  });

  it('refuses any other topic, naming BACKFILL_TOPICS and what it allows', () => {
    expect(() => checkImportTopic(['hunt.events'], 'hunt.events')).not.toThrow();
    expect(() => checkImportTopic(['hunt.events'], 'payments')).toThrow(ImportTopicError);
    expect(() => checkImportTopic(['hunt.events', 'archive.*'], 'payments')).toThrow(
      /Kafka topic payments is not one a backfill may read \(BACKFILL_TOPICS: hunt\.events,archive\.\*\)/,
    );
  });
});
