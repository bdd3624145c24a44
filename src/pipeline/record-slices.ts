/**
 * Where a run of Kafka records is cut into slices: at a number of records or of record bytes
 * (key and value), whichever comes first, with at least one record in each. A count alone
 * lets large records make huge slices: 250 records of 256 KiB, one gzip batch of a few
 * hundred KB on the wire, are 62.5 MiB, and a reject keeps its bytes.
 */
import type { KafkaMessage } from 'kafkajs';

/** The end (exclusive) of the slice of `messages` starting at `start`, and its record bytes. */
export function sliceEnd(messages: readonly KafkaMessage[], start: number, maxRecords: number, maxBytes: number): { end: number; bytes: number } {
  const limit = Math.min(messages.length, start + maxRecords);
  let bytes = 0;
  let end = start;
  while (end < limit && (end === start || bytes < maxBytes)) {
    const record = messages[end++]!;
    bytes += (record.key?.length ?? 0) + (record.value?.length ?? 0);
  }
  return { end, bytes };
}
