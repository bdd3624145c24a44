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
 */
import { eventIdAt, rowCount, type EventRows } from '../store/hot-path/event-rows';
import { PlainInsertPause } from '../pipeline/plain-insert-pause';

/** eventIds remembered: 2-4 MB (ids of 36-64 characters), several micro-batches of every lane. */
export const REMEMBERED_EVENT_IDS = 20_000;

export class KnownEvents {
  private readonly ring: (string | undefined)[];
  private readonly ids = new Set<string>();
  private next = 0;
  /** Plain inserts pause after a conflict: the memory missed a stored eventId. */
  readonly pause = new PlainInsertPause();

  constructor(private readonly capacity = REMEMBERED_EVENT_IDS) {
    this.ring = new Array<string | undefined>(capacity);
  }

  has(eventId: string): boolean {
    return this.ids.has(eventId);
  }

  /**
   * Remembers the eventIds of `rows` now stored (all of them, but those `repeats` lists),
   * forgetting the oldest beyond the capacity. Read again from the rows rather than kept from
   * the sift: held through the commit, a batch's thousands of ids would outlive V8's young
   * generation and swell the old one.
   */
  remember(rows: EventRows, repeats: readonly number[]): void {
    let skip = 0;
    for (let i = 0; i < rowCount(rows); i++) {
      if (repeats[skip] === i) {
        skip++;
        continue;
      }
      this.add(eventIdAt(rows, i));
    }
  }

  private add(id: string): void {
    if (this.ids.has(id)) return;
    const oldest = this.ring[this.next];
    if (oldest !== undefined) this.ids.delete(oldest);
    this.ring[this.next] = id;
    this.ids.add(id);
    this.next = (this.next + 1) % this.capacity;
  }

  /** Forgets every eventId (the floors that made them safe to trust were cleared or lowered). */
  forget(): void {
    this.ids.clear();
    this.ring.fill(undefined);
    this.next = 0;
  }
}

/**
 * The rows of `rows`, by index in ascending order, whose eventId `known` holds or an earlier
 * row of the batch has: duplicates.
 */
export function siftKnownEvents(rows: EventRows, known: KnownEvents): number[] {
  const seen = new Set<string>();
  const repeats: number[] = [];
  for (let i = 0; i < rowCount(rows); i++) {
    const id = eventIdAt(rows, i);
    if (seen.has(id) || known.has(id)) repeats.push(i);
    else seen.add(id);
  }
  return repeats;
}
