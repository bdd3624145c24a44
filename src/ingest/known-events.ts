/**
 * What the hot path knows of the eventIds it stored last, so that a micro-batch's events can
 * go in with a plain INSERT (commitMicroBatch's `plainInsert`), sparing Postgres the lookup
 * of every eventId that ON CONFLICT makes before it inserts (experiments §60).
 *
 * Before a micro-batch commits, its rows that repeat an eventId earlier in the batch, or one
 * this process committed lately, are found, and the statement leaves them out as duplicates.
 * The rest are believed new. A duplicate the memory does not hold (older than it, sent by
 * another process's partitions, stored by a backfill) makes the plain insert fail on the
 * primary key, and the batch is committed again the ordinary way, at the cost of one
 * transaction. So that traffic full of old duplicates cannot double every micro-batch's
 * cost, plain inserts pause for a while after each such conflict.
 *
 * A row left out is not checked against the table: the memory must hold only eventIds that
 * are stored. It holds those this process committed, and a commit stays unless Postgres
 * loses it (a failover to a replica that was behind, a restore). The positions' floors
 * (positions.ts) catch such a loss, and the consumer stops; but only for what they still
 * cover. So the memory is PartitionPositions' own (committedEvents), forgotten in the same
 * step as a floor is cleared or lowered (every join, a log reset), and what it holds from
 * then on is covered by the floors again. Otherwise an event whose commit was lost, read
 * again after a rejoin, would be left out as a duplicate of itself.
 *
 * And each eventId is remembered with the partition whose record stored it, and leaves out
 * only a repeat read from that same partition: a micro-batch stores its partitions' offsets
 * in its own transaction, above their floors, so a batch that leaves out a repeat from
 * partition p commits only if p's commit of the original still stands. A repeat from another
 * partition would be left out on the word of a commit that batch does not check; if that
 * commit were lost and its records gone to retention before they were read again, the repeat
 * was the event's last copy. It goes in with the plain insert instead (a conflict, at worst).
 * Repeats within one batch are left out whatever their partitions: the first copy commits in
 * the same transaction or not at all.
 */
import { RecentMap } from '../recent-map';
import { eventIdAt, rowCount, type EventRows } from '../store/hot-path/event-rows';

/** eventIds remembered: 2-4 MB (ids of 36-64 characters), several micro-batches of every lane. */
export const REMEMBERED_EVENT_IDS = 20_000;

/** Micro-batches committed the ordinary way after a plain insert met a stored eventId. */
export const PAUSE_AFTER_CONFLICT = 64;

/**
 * When a micro-batch may go with a plain insert: always, but for the PAUSE_AFTER_CONFLICT ones
 * after a plain insert met a stored eventId the memory did not hold. Each such conflict costs
 * a transaction (the batch goes again with ON CONFLICT); the pause keeps traffic full of old
 * duplicates from doubling every batch's cost.
 */
export class PlainInsertPause {
  private pausedFor = 0;

  /** Whether the next micro-batch may go with a plain insert; counts down a pause. */
  take(): boolean {
    if (this.pausedFor === 0) return true;
    this.pausedFor--;
    return false;
  }

  /** A plain insert met a stored eventId. */
  conflicted(): void {
    this.pausedFor = PAUSE_AFTER_CONFLICT;
  }
}

export class KnownEvents {
  /** Each remembered eventId, with the partition whose record stored it. */
  private readonly partitions: RecentMap<number>;
  /** Plain inserts pause after a conflict: the memory missed a stored eventId. */
  readonly pause = new PlainInsertPause();

  constructor(capacity = REMEMBERED_EVENT_IDS) {
    this.partitions = new RecentMap(capacity);
  }

  /** Whether `eventId` was stored from a record of `partition`. */
  has(eventId: string, partition: number): boolean {
    return this.partitions.get(eventId) === partition;
  }

  /**
   * Remembers the eventIds of `rows` now stored (all of them, but those `repeats` lists), each
   * with its row's partition, forgetting the oldest beyond the capacity. Read again from the
   * rows rather than kept from the sift: held through the commit, a batch's thousands of ids
   * would outlive V8's young generation and swell the old one.
   */
  remember(rows: EventRows, repeats: readonly number[], partitionOf: (row: number) => number): void {
    let skip = 0;
    for (let i = 0; i < rowCount(rows); i++) {
      if (repeats[skip] === i) {
        skip++;
        continue;
      }
      this.partitions.add(eventIdAt(rows, i), partitionOf(i));
    }
  }

  /** Forgets every eventId (the floors that made them safe to trust were cleared or lowered). */
  forget(): void {
    this.partitions.clear();
  }
}

/**
 * The rows of `rows`, by index in ascending order, that repeat an earlier row of the batch or
 * an eventId `known` holds from the row's own partition (`partitionOf`): duplicates.
 */
export function siftKnownEvents(rows: EventRows, known: KnownEvents, partitionOf: (row: number) => number): number[] {
  const seen = new Set<string>();
  const repeats: number[] = [];
  for (let i = 0; i < rowCount(rows); i++) {
    const id = eventIdAt(rows, i);
    if (seen.has(id) || known.has(id, partitionOf(i))) repeats.push(i);
    else seen.add(id);
  }
  return repeats;
}
