/**
 * The eventIds of a file import's latest chunks, in file order, so that a chunk leaves out
 * the rows that repeat one (they count as duplicates, as the store would count them).
 *
 * A row left out this way is never sent, so each chunk's rows are new to every chunk before
 * it that the memory covers: they can go in with a plain INSERT (ImportPipeline's
 * `plainInserts`), and no two lanes ever hold one eventId at once. Leaving a repeat out
 * needs no proof that its first copy is stored: that copy is in an earlier chunk of the same
 * import, which either commits or fails the import before this chunk is reported, and the
 * retry reads from before it (ImportPipeline). Bounded: the oldest are forgotten, and a repeat
 * of one of them goes to the store, which finds it there.
 */

/** eventIds remembered: a few chunks of 10,000 (2-6 MB). */
export const REMEMBERED_CHUNK_EVENT_IDS = 30_000;

export class RecentEventIds {
  private readonly ring: (string | undefined)[];
  private readonly ids = new Set<string>();
  private next = 0;

  constructor(private readonly capacity = REMEMBERED_CHUNK_EVENT_IDS) {
    this.ring = new Array<string | undefined>(capacity);
  }

  has(eventId: string): boolean {
    return this.ids.has(eventId);
  }

  /** Remembers `eventIds` (a chunk's, each once), forgetting the oldest beyond the capacity. */
  addAll(eventIds: Iterable<string>): void {
    for (const id of eventIds) {
      if (this.ids.has(id)) continue;
      const oldest = this.ring[this.next];
      if (oldest !== undefined) this.ids.delete(oldest);
      this.ring[this.next] = id;
      this.ids.add(id);
      this.next = (this.next + 1) % this.capacity;
    }
  }
}
