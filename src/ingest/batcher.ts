/**
 * Gathers classified slices of Kafka batches (possibly from several partitions at once)
 * into micro-batches and commits each with one `flush` call. `add` resolves once the slice
 * is committed, so the consumer resolves offsets only after Postgres has them. Flushes run
 * one at a time; while one runs (or retries), callers wait, and kafkajs fetches nothing
 * more for their partitions: that is the backpressure that bounds memory.
 */
import type { ClassifiedSlice } from './classify';
import type { BatchSizing } from './sizing';

export interface SliceWork {
  slice: ClassifiedSlice;
  topic: string;
  partition: number;
  /** Offset after the slice's last record. */
  nextOffset: bigint;
  highWatermark: bigint;
  recordCount: number;
  /** Keeps the consumer's group session alive while the slice waits. */
  heartbeat: () => Promise<void>;
}

interface Pending {
  work: SliceWork;
  addedAt: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export type FlushFn = (works: SliceWork[]) => Promise<void>;

export class MicroBatcher {
  private pending: Pending[] = [];
  private pendingRecords = 0;
  private lingerTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly sizing: BatchSizing,
    private readonly flush: FlushFn,
  ) {}

  add(work: SliceWork): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ work, addedAt: Date.now(), resolve, reject });
      this.pendingRecords += work.recordCount;
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.flushing || this.pending.length === 0) return;
    // Linger counts from the oldest waiting slice, which may have waited through a flush.
    const lingerLeft = (this.pending[0] as Pending).addedAt + this.sizing.lingerMs - Date.now();
    if (this.pendingRecords >= this.sizing.targetRecords || lingerLeft <= 0) {
      this.startFlush();
    } else if (!this.lingerTimer) {
      this.lingerTimer = setTimeout(() => this.startFlush(), lingerLeft);
    }
  }

  private startFlush(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    if (this.flushing || this.pending.length === 0) return;
    const taken = this.take();
    this.flushing = this.flush(taken.map((p) => p.work)).then(
      () => taken.forEach((p) => p.resolve()),
      (err: Error) => taken.forEach((p) => p.reject(err)),
    );
    void this.flushing.finally(() => {
      this.flushing = undefined;
      this.schedule();
    });
  }

  /** Up to the target size of records, but always at least one slice. */
  private take(): Pending[] {
    const taken: Pending[] = [];
    let records = 0;
    while (this.pending.length > 0) {
      const next = this.pending[0] as Pending;
      if (taken.length > 0 && records + next.work.recordCount > this.sizing.targetRecords) break;
      taken.push(next);
      records += next.work.recordCount;
      this.pending.shift();
    }
    this.pendingRecords -= records;
    return taken;
  }
}
