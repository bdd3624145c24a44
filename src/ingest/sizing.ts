/**
 * When a micro-batch closes. Fixed mode: at `maxBatchEvents` records or `lingerMs` after its
 * first record, whichever comes first. Adaptive mode sizes batches to a freshness target:
 * with a backlog, batches grow to the maximum (throughput; the backlog, not the batch,
 * decides freshness then); when caught up, the size shrinks while a transaction takes
 * more than half the target, and the linger is held to a fifth of it.
 *
 * In both modes a micro-batch too big to commit (it ran out of time, the statement limit, or of
 * temporary file space, temp_file_limit: on every retry if nothing changes) lowers a ceiling on
 * the size to half of it. The ceiling rises again
 * by a quarter after each batch at the ceiling that took less than half that time even a quarter
 * bigger, so it settles below the size that failed and comes back once Postgres is fast again.
 */
export interface SizingOptions {
  mode: 'fixed' | 'adaptive';
  maxBatchEvents: number;
  lingerMs: number;
  freshnessTargetMs: number;
}

export interface BatchObservation {
  records: number;
  transactionMs: number;
  /** Records still behind the high watermark after this batch, across its partitions. */
  lag: number;
}

const MIN_ADAPTIVE_BATCH = 50;

/**
 * The least time a failure that ran out of time is taken to have needed, for the ceiling's
 * rise: a statement cancelled at once (pg_cancel_backend) says little about the time limit.
 */
const MIN_TIME_LIMIT_MS = 1000;

export class BatchSizing {
  private target: number;
  /** The most records per micro-batch since one ran out of time. */
  private ceiling: number;
  /** How long the micro-batch that last ran out of time had taken. */
  private timeLimitMs = Infinity;

  constructor(private readonly options: SizingOptions) {
    this.target = options.mode === 'fixed' ? options.maxBatchEvents : Math.min(options.maxBatchEvents, 500);
    this.ceiling = options.maxBatchEvents;
  }

  get targetRecords(): number {
    return Math.min(this.target, this.ceiling);
  }

  /**
   * The most records one transaction should hold: the ceiling while it is lowered (a batch
   * that passed it by a slice goes in parts), else no limit (a batch may pass its target by
   * a slice, and goes whole).
   */
  get partLimit(): number {
    return this.ceiling < this.options.maxBatchEvents ? this.ceiling : Infinity;
  }

  /** A micro-batch of `records` failed for its size after `afterMs`: later ones hold at most half as many. */
  tooBigToCommit(records: number, afterMs: number): void {
    this.ceiling = Math.max(1, Math.min(this.ceiling, Math.floor(records / 2)));
    this.timeLimitMs = Math.max(MIN_TIME_LIMIT_MS, afterMs);
  }

  get lingerMs(): number {
    const { mode, lingerMs, freshnessTargetMs } = this.options;
    return mode === 'fixed' ? lingerMs : Math.min(lingerMs, Math.floor(freshnessTargetMs / 5));
  }

  observe(batch: BatchObservation): void {
    const { maxBatchEvents, freshnessTargetMs } = this.options;
    if (this.ceiling < maxBatchEvents && batch.records >= this.ceiling && batch.transactionMs * 1.25 < this.timeLimitMs / 2) {
      this.ceiling = Math.min(maxBatchEvents, Math.ceil(this.ceiling * 1.25));
    }
    if (this.options.mode === 'fixed') return;
    if (batch.lag > this.target) {
      this.target = maxBatchEvents;
    } else if (batch.transactionMs > freshnessTargetMs / 2) {
      this.target = Math.max(MIN_ADAPTIVE_BATCH, Math.floor(this.target * 0.75));
    } else if (batch.records >= this.target && batch.transactionMs < freshnessTargetMs / 4) {
      this.target = Math.min(maxBatchEvents, Math.ceil(this.target * 1.25));
    }
  }
}
