/**
 * Imports one chunk of historical records through the hot path's own steps: the same
 * classification (classifySlice), the same store-and-score transaction (commitMicroBatch:
 * dedupe by eventId, projection deltas only for new events, quarantine for rejects).
 */
import type pg from 'pg';
import { classifySlice, type SourceRecord } from '../ingest/classify';
import { commitMicroBatch } from '../ingest/commit';
import type { ImportCounts } from './counts';

export { addCounts, emptyCounts, type ImportCounts } from './counts';

export interface ImportOrigin {
  /** Quarantine's source_topic for rejects, e.g. `file:/data/events.ndjson` or a Kafka topic. */
  topic: string;
  partition: number;
  /** Provenance prefix stored with accepted events. */
  sourceLabel: string;
}

export interface ImportOptions {
  dryRun: boolean;
  huntId?: string;
  groupId: string;
  now?: Date;
}

/** Imports (or, in a dry run, only counts what importing would do) one chunk. */
export async function importRecords(
  pool: pg.Pool,
  origin: ImportOrigin,
  records: readonly SourceRecord[],
  options: ImportOptions,
): Promise<ImportCounts> {
  const slice = classifySlice(origin.topic, origin.partition, records, options.now ?? new Date(), origin.sourceLabel);
  const accepted = options.huntId ? slice.accepted.filter((a) => a.event.huntId === options.huntId) : slice.accepted;
  const rejectedByReason: Record<string, number> = {};
  for (const r of slice.rejected) rejectedByReason[r.reason] = (rejectedByReason[r.reason] ?? 0) + 1;
  const counts = {
    records: records.length,
    rejected: slice.rejected.length,
    rejectedByReason,
    filteredOut: slice.accepted.length - accepted.length,
  };
  if (options.dryRun) {
    const ids = [...new Set(accepted.map((a) => a.event.eventId))];
    const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE event_id = ANY($1::text[])', [ids]);
    const wouldInsert = ids.length - (rows[0]?.n ?? 0);
    return { ...counts, inserted: wouldInsert, duplicates: accepted.length - wouldInsert };
  }
  const result = await commitMicroBatch(pool, options.groupId, { accepted, rejected: slice.rejected, offsets: [] });
  return { ...counts, inserted: result.inserted, duplicates: result.duplicates };
}
