/**
 * When a micro-batch closes. Fixed mode: at `maxBatchEvents` records or `lingerMs` after its
 * first record, whichever comes first. Adaptive mode sizes batches to a freshness target:
 * with a backlog, batches grow to the maximum (throughput; the backlog, not the batch,
 * decides freshness then); when caught up, the size shrinks while a transaction takes
 * more than half the target, and the linger is held to a fifth of it.
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

export class BatchSizing {
  private target: number;

  constructor(private readonly options: SizingOptions) {
    this.target = options.mode === 'fixed' ? options.maxBatchEvents : Math.min(options.maxBatchEvents, 500);
  }

  get targetRecords(): number {
    return this.target;
  }

  get lingerMs(): number {
    const { mode, lingerMs, freshnessTargetMs } = this.options;
    return mode === 'fixed' ? lingerMs : Math.min(lingerMs, Math.floor(freshnessTargetMs / 5));
  }

  observe(batch: BatchObservation): void {
    if (this.options.mode === 'fixed') return;
    const { maxBatchEvents, freshnessTargetMs } = this.options;
    if (batch.lag > this.target) {
      this.target = maxBatchEvents;
    } else if (batch.transactionMs > freshnessTargetMs / 2) {
      this.target = Math.max(MIN_ADAPTIVE_BATCH, Math.floor(this.target * 0.75));
    } else if (batch.records >= this.target && batch.transactionMs < freshnessTargetMs / 4) {
      this.target = Math.min(maxBatchEvents, Math.ceil(this.target * 1.25));
    }
  }
}
