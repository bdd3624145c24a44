/**
 * One micro-batch, one Postgres transaction: raw events and projection deltas, quarantine
 * rows and the partition offsets commit together or not at all (DESIGN invariant 1).
 */
import type pg from 'pg';
import { applyEvents, type AcceptedEvent, type ApplyResult } from '../store/apply-events';
import { storeOffsets, type PartitionOffset } from '../store/offsets';
import { quarantineRecords } from '../store/quarantine';
import { withTransaction } from '../store/transaction';
import type { RejectedRecord } from './classify';

export interface MicroBatch {
  accepted: AcceptedEvent[];
  rejected: RejectedRecord[];
  offsets: PartitionOffset[];
}

export async function commitMicroBatch(pool: pg.Pool, groupId: string, batch: MicroBatch): Promise<ApplyResult> {
  return withTransaction(pool, async (client) => {
    const result = await applyEvents(client, batch.accepted);
    await quarantineRecords(client, batch.rejected);
    await storeOffsets(client, groupId, batch.offsets);
    return result;
  });
}

/** The furthest offset per partition among the slices of one micro-batch. */
export function mergeOffsets(offsets: readonly PartitionOffset[]): PartitionOffset[] {
  const merged = new Map<string, PartitionOffset>();
  for (const o of offsets) {
    const key = `${o.topic}\t${o.partition}`;
    const seen = merged.get(key);
    if (!seen || o.nextOffset > seen.nextOffset) merged.set(key, o);
  }
  return [...merged.values()];
}
