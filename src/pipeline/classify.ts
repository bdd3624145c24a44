/**
 * The hot path's decision per record, pure and broker-free: accepted event, or rejected
 * record with the contract's reason, kept byte for byte for the DLQ and quarantine.
 *
 * Accepted events leave as rows for the store (event-rows.ts) and their origins with copied
 * bytes (record-origins.ts), not as objects: a classified slice waits in memory until its
 * micro-batch commits, and compact slices keep the heap small under any backlog.
 */
import { classifyRecord } from '../events/validate';
import { EventRowsBuilder, eventRow, type EventRows } from '../store/hot-path/event-rows';
import type { RejectedRecord } from '../store/hot-path/quarantine';
import { OriginsBuilder, type RecordOrigins } from '../store/hot-path/record-origins';

export type { RejectedRecord } from '../store/hot-path/quarantine';

/** The parts of a Kafka record the hot path needs (kafkajs's KafkaMessage fits). */
export interface SourceRecord {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
}

export interface ClassifiedSlice {
  /** The accepted events, in arrival order. */
  rows: EventRows;
  /** Where each row came from, bytes included (for a record the database refuses). */
  origins: RecordOrigins;
  rejected: RejectedRecord[];
  /** Kafka timestamps (ms) of the accepted records, for the freshness metric. */
  acceptedTimestamps: Float64Array;
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
  const rows = new EventRowsBuilder();
  const origins = new OriginsBuilder(topic, partition);
  const rejected: RejectedRecord[] = [];
  const timestamps: number[] = [];
  for (const record of records) {
    const result = classifyRecord(record.value, now);
    if (result.ok) {
      rows.add(eventRow(result.event, `${sourceLabel}:${record.offset}`), result.event.huntId);
      origins.add(record.offset, record.key, record.value);
      timestamps.push(Number(record.timestamp));
    } else {
      // Copies, so a reject waiting for its commit does not keep a whole fetch response alive.
      const copy = (b: Buffer | null) => (b === null ? null : Buffer.from(b));
      rejected.push({ topic, partition, offset: record.offset, key: copy(record.key), value: copy(record.value), reason: result.reason, detail: result.detail });
    }
  }
  return { rows: rows.build(), origins: origins.build(), rejected, acceptedTimestamps: Float64Array.from(timestamps) };
}
