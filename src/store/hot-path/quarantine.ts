/** Quarantine rows: rejected records kept byte for byte with their reason. */
import type pg from 'pg';
import { groupsWithin } from '../../byte-budget';
import type { RejectReason } from '../../events/validate';
import { nameIfSmall } from './statement-name';

/** Where a record came from, with its bytes: enough to copy it to the DLQ unchanged. */
export interface RecordOrigin {
  /** A Kafka topic, or `file:<path>` for a backfill file. */
  topic: string;
  partition: number;
  /** The Kafka offset, or the line number in a file. */
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
}

export interface RejectedRecord extends RecordOrigin {
  reason: RejectReason;
  /** Safe text of at most 1 KiB (toDetailText). */
  detail: string;
}

/**
 * Record bytes per INSERT. The bytes of every record go as one bytea[] parameter, which the
 * driver writes as one hex string: past about 268 MB of record bytes that string cannot be
 * built at all (V8's limit), and the commit would fail the same way for ever. Rejects of
 * compressed records can add up to that in one fetch, so they go in groups.
 */
export const MAX_BYTES_PER_INSERT = 16 * 1024 * 1024;

/**
 * Idempotent per source position and bytes (key and value): a redelivered reject is not
 * quarantined twice (nor copied to the DLQ twice), while a different record at a position
 * quarantined before (a topic recreated, a log truncated and written again) gets a row of
 * its own (migrations 008, 015).
 * `copyToDlq`: the row waits for the DLQ relay to send its copy (the hot path's rejects;
 * migration 010).
 */
export async function quarantineRecords(client: pg.ClientBase, records: readonly RejectedRecord[], options: { copyToDlq?: boolean } = {}): Promise<void> {
  for (const group of insertGroups(records)) await insertQuarantined(client, group, options.copyToDlq ?? false);
}

/**
 * quarantineRecords with every INSERT written at once, for a connection that pipelines
 * (src/pipeline/commit.ts): each promise settles with its statement.
 */
export function writeQuarantineInserts(client: pg.ClientBase, records: readonly RejectedRecord[], options: { copyToDlq?: boolean } = {}): Promise<void>[] {
  return insertGroups(records).map((group) => insertQuarantined(client, group, options.copyToDlq ?? false));
}

const recordBytes = (r: RejectedRecord) => (r.key?.length ?? 0) + (r.value?.length ?? 0);

function insertGroups(records: readonly RejectedRecord[]): RejectedRecord[][] {
  return groupsWithin(onceEach(records), MAX_BYTES_PER_INSERT, recordBytes);
}

const sameBytes = (a: Buffer | null, b: Buffer | null) => (a === null ? b === null : b !== null && a.equals(b));

/**
 * Each record once by position and bytes (what the unique key holds): an INSERT whose ON
 * CONFLICT DO UPDATE meets one key twice fails whole (21000), which no retry would cure.
 */
function onceEach(records: readonly RejectedRecord[]): RejectedRecord[] {
  const seen = new Map<string, RejectedRecord[]>();
  return records.filter((r) => {
    const position = `${r.topic}\t${r.partition}\t${r.offset}`;
    const others = seen.get(position) ?? [];
    if (others.some((o) => sameBytes(o.value, r.value) && sameBytes(o.key, r.key))) return false;
    seen.set(position, [...others, r]);
    return true;
  });
}

async function insertQuarantined(client: pg.ClientBase, records: readonly RejectedRecord[], copyToDlq: boolean): Promise<void> {
  const chars = records.reduce((sum, r) => sum + (r.key?.length ?? 0) + (r.value?.length ?? 0) + r.detail.length, 0);
  await client.query({
    ...nameIfSmall('quarantine-records', chars),
    text: `INSERT INTO quarantine (source_topic, source_partition, source_offset, record_key, record_value, reason, detail, dlq_pending)
           SELECT *, $8::boolean FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[], $5::bytea[], $6::text[], $7::text[])
           ON CONFLICT (source_topic, source_partition, source_offset, record_digest) DO UPDATE SET dlq_pending = true
             -- Quarantined before without a copy (by a backfill of the same topic): the hot path's reject still gets one.
             WHERE excluded.dlq_pending AND NOT quarantine.dlq_pending AND quarantine.dlq_sent_at IS NULL`,
    values: [
      records.map((r) => r.topic),
      records.map((r) => r.partition),
      records.map((r) => r.offset),
      records.map((r) => r.key),
      records.map((r) => r.value),
      records.map((r) => r.reason),
      records.map((r) => r.detail),
      copyToDlq,
    ],
  });
}
