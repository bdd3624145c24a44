/**
 * The hot path's decision per record, pure and broker-free: accepted event, or rejected
 * record with the contract's reason, kept byte for byte for the DLQ and quarantine.
 *
 * Accepted events leave as rows for the store (event-rows.ts) and their origins with copied
 * bytes (record-origins.ts), not as objects: a classified slice waits in memory until its
 * micro-batch commits, and compact slices keep the heap small under any backlog.
 */
import { toDetailText } from '../events/detail-text';
import { classifyRecord } from '../events/validate';
import { EventRowsBuilder, eventRow, type EventRows } from '../store/hot-path/event-rows';
import type { RejectedRecord } from '../store/hot-path/quarantine';
import { codecName, unreadableReason, type UnreadableBatch } from './compression';
import { OriginsBuilder, type RecordOrigins } from '../store/hot-path/record-origins';

export type { RejectedRecord } from '../store/hot-path/quarantine';

/**
 * The most of a rejected record's key, and of its value, kept for the DLQ and quarantine:
 * 1 MiB, what a topic with the broker's default max.message.bytes lets a producer send. A
 * larger one arrived compressed (1 MB of gzip can unpack to a hundred), and kept whole it
 * would make a quarantine insert Node cannot even encode (past about 268 MB of parameter)
 * and a DLQ send the broker never takes: retried for ever, stalling the partition.
 */
export const MAX_KEPT_BYTES = 1024 * 1024;

/** How far ahead of the consumer's clock a producer's clock may run and its timestamps still count. */
export const TIMESTAMP_AHEAD_TOLERANCE_MS = 5_000;

/**
 * Whether a record's Kafka timestamp (a producer's CreateTime: a game client's clock) can be
 * true: set, and not ahead of ours by more than the tolerance. Freshness is measured from it,
 * so a client clock an hour ahead would count its events as fresh however late they were,
 * and -1 (no timestamp) as an hour-old miss; such records are left out of the freshness
 * histogram and the SLO counts, and counted (hunt_ingest_implausible_timestamps_total).
 */
export function plausibleTimestamp(timestampMs: number, nowMs: number): boolean {
  return Number.isFinite(timestampMs) && timestampMs > 0 && timestampMs <= nowMs + TIMESTAMP_AHEAD_TOLERANCE_MS;
}

/** The parts of a Kafka record the hot path needs (kafkajs's KafkaMessage fits). */
export interface SourceRecord {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
  /** Set on the one stand-in record of a compressed batch that could not be unpacked (patches/kafkajs+2.2.4.patch). */
  unreadable?: UnreadableBatch;
}

export interface ClassifiedSlice {
  /** The accepted events, in arrival order. */
  rows: EventRows;
  /** Where each row came from, bytes included (for a record the database refuses). */
  origins: RecordOrigins;
  rejected: RejectedRecord[];
  /** Kafka timestamps (ms) of the accepted records, for the freshness metric; only those that can be true (plausibleTimestamp). */
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
    if (record.unreadable) {
      rejected.push(unreadableBatchReject(topic, partition, record, record.unreadable));
      continue;
    }
    const result = classifyRecord(record.value, now);
    if (result.ok) {
      rows.add(eventRow(result.event, `${sourceLabel}:${record.offset}`), result.event.huntId);
      // Only a refused record's origin is ever read, and its key is kept cut (commit.ts): a
      // key of tens of MiB (it may come compressed) held whole until the commit, per record.
      // Cut only when longer: a view made of every key was an allocation per record for nothing.
      const key = record.key !== null && record.key.length > MAX_KEPT_BYTES ? record.key.subarray(0, MAX_KEPT_BYTES) : record.key;
      origins.add(record.offset, key, record.value);
      const timestamp = Number(record.timestamp);
      if (plausibleTimestamp(timestamp, now.getTime())) timestamps.push(timestamp);
    } else {
      rejected.push({ topic, partition, offset: record.offset, key: kept(record.key), value: kept(record.value), reason: result.reason, detail: keptDetail(record, result.detail) });
    }
  }
  return { rows: rows.build(), origins: origins.build(), rejected, acceptedTimestamps: Float64Array.from(timestamps) };
}

/**
 * The rejection of every record of a compressed batch that could not be unpacked: one, under
 * the batch's last offset, since its records and even their number are out of reach. Its
 * value is the batch's compressed records as they came, so an operator can recover them with
 * the codec's own tools.
 */
function unreadableBatchReject(topic: string, partition: number, record: SourceRecord, batch: UnreadableBatch): RejectedRecord {
  const offsets = batch.firstOffset === batch.lastOffset ? `offset ${batch.lastOffset}` : `offsets ${batch.firstOffset}-${batch.lastOffset}`;
  const compressed = record.value?.length ?? 0;
  const keptPart = compressed > MAX_KEPT_BYTES ? `the first ${MAX_KEPT_BYTES} of its ${compressed} bytes` : `its ${compressed} bytes`;
  const detail =
    `the records at ${offsets} (${batch.count} stated) are rejected together: ${batch.error?.message ?? String(batch.error)}; ` +
    `the value kept is the batch's compressed records (${codecName(batch.codecId)}, ${keptPart})`;
  return { topic, partition, offset: record.offset, key: null, value: kept(record.value), reason: unreadableReason(batch), detail: toDetailText(detail) };
}

/** A copy (so a reject waiting for its commit does not keep a whole fetch response alive) of at most MAX_KEPT_BYTES. */
export function kept(bytes: Buffer | null): Buffer | null {
  return bytes === null ? null : Buffer.from(bytes.subarray(0, MAX_KEPT_BYTES));
}

/** The rejection's detail, saying first what was cut from the record, if anything. */
function keptDetail(record: SourceRecord, detail: string): string {
  const cut = (['key', 'value'] as const)
    .filter((part) => (record[part]?.length ?? 0) > MAX_KEPT_BYTES)
    .map((part) => `${part} of ${record[part]?.length} bytes, only its first ${MAX_KEPT_BYTES} kept`);
  return cut.length === 0 ? detail : toDetailText(`${cut.join('; ')}; ${detail}`);
}
