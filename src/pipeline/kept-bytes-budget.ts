/**
 * How many bytes of rejected records one consumer keeps whole, for quarantine and the DLQ.
 *
 * A rejected record is kept byte for byte (up to MAX_KEPT_BYTES of its key and of its value),
 * so the DLQ holds it unchanged. But a producer can send compressed batches whose records
 * unpack to a megabyte each (a repeated block compresses to almost nothing): one 1 MB batch
 * made 64 MB of quarantine rows, WAL and DLQ copies, and a hostile client could fill
 * Postgres's and the brokers' disks some 64 times faster than it sends. Past this budget,
 * which no honest traffic nears (a rejected event is a few hundred bytes), a record keeps
 * only its first OVER_BUDGET_KEPT_BYTES, and its detail says so and how big it was. A token
 * bucket: the budget refills evenly, and holds at most a minute's worth.
 */

/** Bytes of rejected records kept whole per minute, per consumer process. */
export const KEPT_BYTES_PER_MINUTE = 16 * 1024 * 1024;
/** What a record past the budget keeps of its key and of its value: enough to see what it was. */
export const OVER_BUDGET_KEPT_BYTES = 4096;

export class KeptBytesBudget {
  private available: number;
  private refilledAt: number;

  constructor(
    private readonly bytesPerMinute = KEPT_BYTES_PER_MINUTE,
    private readonly now: () => number = Date.now,
  ) {
    this.available = bytesPerMinute;
    this.refilledAt = now();
  }

  /** Takes `bytes` from the budget and returns true, or returns false (taking nothing) when it has not that much left. */
  take(bytes: number): boolean {
    const now = this.now();
    this.available = Math.min(this.bytesPerMinute, this.available + ((now - this.refilledAt) * this.bytesPerMinute) / 60_000);
    this.refilledAt = now;
    if (bytes > this.available) return false;
    this.available -= bytes;
    return true;
  }
}
