/**
 * A map that holds its latest `capacity` keys: adding one more forgets the oldest. A key added
 * again keeps its first value and its place (it is not refreshed). The bounded memory behind
 * the hot path's known eventIds (src/ingest/known-events.ts) and a file backfill's
 * (src/batch/backfill/recent-event-ids.ts).
 */
export class RecentMap<V> {
  private readonly ring: (string | undefined)[];
  private readonly values = new Map<string, V>();
  private next = 0;

  constructor(private readonly capacity: number) {
    this.ring = new Array<string | undefined>(capacity);
  }

  get(key: string): V | undefined {
    return this.values.get(key);
  }

  /** Adds `key` with `value` unless it is held already, forgetting the oldest key beyond the capacity. */
  add(key: string, value: V): void {
    if (this.values.has(key)) return;
    const oldest = this.ring[this.next];
    if (oldest !== undefined) this.values.delete(oldest);
    this.ring[this.next] = key;
    this.values.set(key, value);
    this.next = (this.next + 1) % this.capacity;
  }

  clear(): void {
    this.values.clear();
    this.ring.fill(undefined);
    this.next = 0;
  }
}
