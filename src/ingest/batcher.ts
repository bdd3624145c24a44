/**
 * Gathers classified slices of Kafka batches (possibly from several partitions at once)
 * into micro-batches and commits each with one `flush` call, one flush at a time, in the
 * order the slices came. A micro-batch closes at the sizing's target of records or at
 * MAX_BATCH_BYTES of record bytes, whichever comes first: records of up to the broker's
 * message size (rejects are kept byte for byte) must not make a batch hold gigabytes, nor
 * one statement's parameter grow past what the driver and Postgres take.
 *
 * Two stages overlap: while one micro-batch commits in Postgres, the consumer fetches and
 * classifies the next into the buffer. `add` resolves once a slice is buffered, not once it
 * is committed; it waits while a full micro-batch is already buffered behind the one
 * committing. That wait is the backpressure that bounds memory (at most two micro-batches
 * plus one slice, by records and by bytes), and kafkajs fetches nothing more for a
 * partition whose handler waits.
 *
 * Buffered is not committed: the offsets Postgres holds are the only record of progress,
 * so a crash loses nothing (the next run re-reads from Postgres's offsets). A flush that
 * fails for good poisons the batcher: a later micro-batch must never store offsets past
 * records that were not committed.
 */
import { classifySlice, type ClassifiedSlice } from '../pipeline/classify';
import type { BatchSizing } from './sizing';

export interface SliceWork {
  slice: ClassifiedSlice;
  topic: string;
  partition: number;
  /** Offset after the slice's last record. */
  nextOffset: bigint;
  highWatermark: bigint;
  recordCount: number;
  /** Key and value bytes of the slice's records. */
  byteCount: number;
  /** Keeps the consumer's group session alive while a commit retries. */
  heartbeat: () => Promise<void>;
}

export type FlushFn = (works: SliceWork[]) => Promise<void>;

/**
 * Work of no records that moves a partition's stored position to `nextOffset` with the lane's
 * next commit, behind the slices buffered before it: records kafkajs stepped over
 * (filtered-records.ts), a retention gap passed (retention-gap.ts).
 */
export function positionOnlyWork(topic: string, partition: number, nextOffset: bigint, highWatermark: bigint): SliceWork {
  return { slice: classifySlice(topic, partition, [], new Date()), topic, partition, nextOffset, highWatermark, recordCount: 0, byteCount: 0, heartbeat: async () => undefined };
}

/**
 * Record bytes at which a micro-batch closes. Far above what the record count lets ordinary
 * events reach (5,000 events of 600 bytes are 3 MB), so it only bites on large records.
 */
export const MAX_BATCH_BYTES = 8 * 1024 * 1024;

interface Buffered {
  work: SliceWork;
  addedAt: number;
}

export class MicroBatcher {
  private buffered: Buffered[] = [];
  private bufferedRecords = 0;
  private bufferedBytes = 0;
  private lingerTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  /** When the oldest slice of the micro-batch committing now was buffered. */
  private flushingSince: number | undefined;
  // Times here are performance.now(), which only moves forward: a wall-clock step back (NTP,
  // a VM resumed) would otherwise hold a linger timer, and hide a stall, for as long as the step.
  private lastFlushedAt = performance.now();
  private failure: Error | undefined;
  /** Callers of `add` waiting for room, woken after each flush. */
  private waitingForRoom: Array<() => void> = [];
  /** Per partition, works added and not yet committed (waiting for room, buffered or committing): what `settled` waits for. */
  private uncommitted = new Map<number, number>();
  /** Callers of `settled` waiting, woken after each flush. */
  private waitingForCommit: Array<() => void> = [];

  constructor(
    private readonly sizing: BatchSizing,
    private readonly flush: FlushFn,
    private readonly maxBatchBytes = MAX_BATCH_BYTES,
  ) {}

  /**
   * Buffers `work` for the next micro-batch; resolves once it is buffered (not committed), to
   * true, or to false without buffering it when `signal` aborts while it waits for room.
   */
  async add(work: SliceWork, signal?: AbortSignal): Promise<boolean> {
    this.countUncommitted(work.partition, 1);
    while (!this.failure && this.isFull()) {
      if (signal?.aborted) {
        this.countUncommitted(work.partition, -1);
        return false;
      }
      await new Promise<void>((resolve) => {
        // Woken by a flush or by the signal, whichever first; the listener goes either way,
        // or every wait would leave one on a signal that may live long.
        const wake = () => {
          signal?.removeEventListener('abort', wake);
          resolve();
        };
        this.waitingForRoom.push(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
    if (this.failure) {
      this.countUncommitted(work.partition, -1);
      throw this.failure;
    }
    this.buffered.push({ work, addedAt: performance.now() });
    this.bufferedRecords += work.recordCount;
    this.bufferedBytes += work.byteCount;
    this.schedule();
    return true;
  }

  /** Commits everything buffered; resolves when nothing is buffered or committing. */
  async drain(): Promise<void> {
    while (this.flushing || (this.buffered.length > 0 && !this.failure)) {
      if (!this.flushing) this.startFlush();
      await this.flushing;
    }
    if (this.failure) throw this.failure;
  }

  /**
   * Resolves once no work of `partition` is waiting for room, buffered or committing: every
   * one added is committed (its records' offsets with them), whatever other partitions add.
   * Not `drain`: on a lane shared with busy partitions (after an outage, say), their slices
   * waiting for room refill it after every flush, and a drain would last as long as they kept
   * coming, inside a fetch handler, holding back every partition of its broker.
   */
  async settled(partition: number): Promise<void> {
    while ((this.uncommitted.get(partition) ?? 0) > 0) {
      if (this.failure) throw this.failure;
      // Commits at once what is buffered, rather than after the linger.
      if (!this.flushing) this.startFlush();
      await new Promise<void>((resolve) => this.waitingForCommit.push(resolve));
    }
  }

  /** Records buffered and not yet handed to a flush. */
  get pendingRecords(): number {
    return this.bufferedRecords;
  }

  /**
   * How long this lane has held work without committing any: 0 when idle or when a flush
   * succeeded since its oldest work arrived. Grows without bound while commits keep failing.
   */
  stalledMs(now = performance.now()): number {
    const oldest = this.flushingSince ?? this.buffered[0]?.addedAt;
    if (oldest === undefined) return 0;
    return Math.max(0, now - Math.max(oldest, this.lastFlushedAt));
  }

  private countUncommitted(partition: number, change: number): void {
    const count = (this.uncommitted.get(partition) ?? 0) + change;
    if (count > 0) this.uncommitted.set(partition, count);
    else this.uncommitted.delete(partition);
  }

  private isFull(): boolean {
    return this.bufferedRecords >= this.sizing.targetRecords || this.bufferedBytes >= this.maxBatchBytes;
  }

  private schedule(): void {
    if (this.flushing || this.failure || this.buffered.length === 0) return;
    // Linger counts from the oldest buffered slice, which may have waited through a flush.
    const lingerLeft = (this.buffered[0] as Buffered).addedAt + this.sizing.lingerMs - performance.now();
    if (this.isFull() || lingerLeft <= 0) {
      this.startFlush();
    } else if (!this.lingerTimer) {
      this.lingerTimer = setTimeout(() => this.startFlush(), lingerLeft);
    }
  }

  private startFlush(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    if (this.flushing || this.failure || this.buffered.length === 0) return;
    this.flushingSince = (this.buffered[0] as Buffered).addedAt;
    const taken = this.take();
    this.wakeWaiters();
    this.flushing = this.flush(taken).then(
      () => {
        this.lastFlushedAt = performance.now();
        for (const work of taken) this.countUncommitted(work.partition, -1);
      },
      (err: Error) => {
        this.failure = err;
      },
    );
    void this.flushing.finally(() => {
      this.flushing = undefined;
      this.flushingSince = undefined;
      this.wakeWaiters();
      const committedWaiters = this.waitingForCommit;
      this.waitingForCommit = [];
      for (const wake of committedWaiters) wake();
      this.schedule();
    });
  }

  private wakeWaiters(): void {
    const waiters = this.waitingForRoom;
    this.waitingForRoom = [];
    for (const wake of waiters) wake();
  }

  /** Up to the target size of records and the byte budget, but always at least one slice. */
  private take(): SliceWork[] {
    const taken: SliceWork[] = [];
    let records = 0;
    let bytes = 0;
    while (this.buffered.length > 0) {
      const next = (this.buffered[0] as Buffered).work;
      const over = records + next.recordCount > this.sizing.targetRecords || bytes + next.byteCount > this.maxBatchBytes;
      if (taken.length > 0 && over) break;
      taken.push(next);
      records += next.recordCount;
      bytes += next.byteCount;
      this.buffered.shift();
    }
    this.bufferedRecords -= records;
    this.bufferedBytes -= bytes;
    return taken;
  }
}
