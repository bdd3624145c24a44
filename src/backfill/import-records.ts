/**
 * Imports one chunk of historical records through the hot path's own steps: the same
 * classification (classifySlice), the same store-and-score transaction (commitMicroBatch:
 * dedupe by eventId, projection deltas only for new events, quarantine for rejects).
 *
 * Two steps, so a caller can prepare the next chunk (CPU) while this one commits (Postgres).
 * A chunk commits in lanes: its events split by hunt into `lanes` transactions that run at
 * once on their own connections, so Postgres can use more than one core. Each hunt's events
 * stay in one lane, in file order, so first-arrival scoring sees them in the order a single
 * transaction would; lanes touch disjoint fence rows. If one lane commits and another fails,
 * the retried chunk finds the committed lane's events stored already (no effect) and
 * imports the rest: the result is the same as one transaction's.
 */
import type pg from 'pg';
import type { AcceptedEvent } from '../store/apply-events';
import { classifySlice, type RejectedRecord, type SourceRecord } from '../ingest/classify';
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
  /** Transactions a chunk commits in at once (by hunt); 1 = one transaction. */
  lanes?: number;
}

export interface PreparedChunk {
  accepted: AcceptedEvent[];
  rejected: RejectedRecord[];
  /** Counts known before committing: records, rejects, filtered out. */
  counts: Omit<ImportCounts, 'inserted' | 'duplicates'>;
}

/**
 * Classifies a chunk and applies the job's hunt filter; pure CPU, no I/O. `rejectedAlready`
 * are records of the chunk the reader rejected itself (lines too long to hold).
 */
export function prepareImport(origin: ImportOrigin, records: readonly SourceRecord[], options: ImportOptions, rejectedAlready: RejectedRecord[] = []): PreparedChunk {
  const slice = classifySlice(origin.topic, origin.partition, records, options.now ?? new Date(), origin.sourceLabel);
  const accepted = options.huntId ? slice.accepted.filter((a) => a.event.huntId === options.huntId) : slice.accepted;
  const rejected = [...rejectedAlready, ...slice.rejected];
  const rejectedByReason: Record<string, number> = {};
  for (const r of rejected) rejectedByReason[r.reason] = (rejectedByReason[r.reason] ?? 0) + 1;
  return {
    accepted,
    rejected,
    counts: { records: records.length + rejectedAlready.length, rejected: rejected.length, rejectedByReason, filteredOut: slice.accepted.length - accepted.length },
  };
}

/** Commits a prepared chunk (or, in a dry run, only counts what committing would do). */
export async function commitImport(pool: pg.Pool, chunk: PreparedChunk, options: ImportOptions): Promise<ImportCounts> {
  const { accepted, rejected, counts } = chunk;
  if (options.dryRun) {
    const ids = [...new Set(accepted.map((a) => a.event.eventId))];
    const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE event_id = ANY($1::text[])', [ids]);
    const wouldInsert = ids.length - (rows[0]?.n ?? 0);
    return { ...counts, inserted: wouldInsert, duplicates: accepted.length - wouldInsert };
  }
  const byLane = splitByHunt(accepted, options.lanes ?? 1);
  const results = await Promise.all(
    byLane.map((laneEvents, lane) =>
      // Rejects are quarantined once, with the first lane.
      commitMicroBatch(pool, options.groupId, { accepted: laneEvents, rejected: lane === 0 ? rejected : [], offsets: [] }),
    ),
  );
  const inserted = results.reduce((sum, r) => sum + r.inserted, 0);
  const unprocessable = results.reduce((sum, r) => sum + r.unprocessable.length, 0);
  const rejectedByReason = { ...counts.rejectedByReason };
  if (unprocessable > 0) rejectedByReason.unprocessable = (rejectedByReason.unprocessable ?? 0) + unprocessable;
  return { ...counts, rejected: counts.rejected + unprocessable, rejectedByReason, inserted, duplicates: accepted.length - inserted - unprocessable };
}

/** Splits events into `lanes` groups by hunt (FNV-1a of the huntId), keeping their order. */
export function splitByHunt(events: readonly AcceptedEvent[], lanes: number): AcceptedEvent[][] {
  const groups: AcceptedEvent[][] = Array.from({ length: Math.max(1, lanes) }, () => []);
  if (groups.length === 1) return [[...events]];
  for (const e of events) (groups[laneOfHunt(e.event.huntId, groups.length)] as AcceptedEvent[]).push(e);
  return groups.filter((g, lane) => g.length > 0 || lane === 0);
}

function laneOfHunt(huntId: string, lanes: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < huntId.length; i++) hash = Math.imul(hash ^ huntId.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % lanes;
}
