/**
 * The hot path's decision per record, pure and broker-free: accepted event, or rejected
 * record with the contract's reason, kept byte for byte for the DLQ and quarantine.
 */
import { classifyRecord } from '../events/validate';
import type { AcceptedEvent } from '../store/apply-events';
import type { RejectedRecord } from '../store/quarantine';

export type { RejectedRecord } from '../store/quarantine';

/** The parts of a Kafka record the hot path needs (kafkajs's KafkaMessage fits). */
export interface SourceRecord {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
}

export interface ClassifiedSlice {
  accepted: AcceptedEvent[];
  rejected: RejectedRecord[];
  /** Kafka timestamps (ms) of the accepted records, for the freshness metric. */
  acceptedTimestamps: number[];
}

/**
 * Classifies records of one source partition. `sourceLabel` prefixes each accepted event's
 * provenance (`kafka:<topic>:<partition>` by default; a backfill passes its own).
 */
export function classifySlice(
  topic: string,
  partition: number,
  records: readonly SourceRecord[],
  now: Date,
  sourceLabel = `kafka:${topic}:${partition}`,
): ClassifiedSlice {
  const slice: ClassifiedSlice = { accepted: [], rejected: [], acceptedTimestamps: [] };
  for (const record of records) {
    const result = classifyRecord(record.value, now);
    const origin = { topic, partition, offset: record.offset, key: record.key, value: record.value };
    if (result.ok) {
      slice.accepted.push({ event: result.event, instant: result.instant, source: `${sourceLabel}:${record.offset}`, origin });
      slice.acceptedTimestamps.push(Number(record.timestamp));
    } else {
      slice.rejected.push({ ...origin, reason: result.reason, detail: result.detail });
    }
  }
  return slice;
}
