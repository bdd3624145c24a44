import type pg from 'pg';
import { commitMicroBatch, type CommitOptions, type CommitResult, type MicroBatch } from '../pipeline/commit';
import { rowCount, sliceRows, withOwnHunts } from '../store/hot-path/event-rows';
import { floorsOnly } from '../store/hot-path/offsets';
import { sliceOrigins } from '../store/hot-path/record-origins';

/**
 * A micro-batch committed whole, or in consecutive parts, each its own transaction: once a
 * part runs out of time, or from the start while the sizing holds micro-batches below a size
 * that ran out of time (a batch can pass its target by a slice). A part holds records in the
 * batch's order, its accepted events first, then its rejects. Only the last part stores the
 * offsets; the earlier ones check that Postgres has not lost commits (floorsOnly), as every
 * commit does, and take the fences of their own hunts only. A crash after an earlier part
 * re-reads the whole batch from the offsets Postgres holds, and the committed part's events
 * are then found stored (dedupe by eventId) and change nothing. Each hunt's events keep
 * their order: the parts go in row order, one after another.
 */
export class PartedCommit {
  /** Records committed by earlier parts: accepted events, then rejects. */
  private done = 0;
  private readonly units: number;
  /** Records per part. */
  partUnits: number;
  /** The part that failed last: its records, and how long it took to fail. */
  failedPart = { units: 0, ms: 0 };
  /** The last part committed: its records, and how long its commit took. */
  lastPart = { units: 0, ms: 0 };
  private readonly total: CommitResult = { inserted: 0, duplicates: 0, unprocessable: [], isolated: false, plainInsertConflicted: false };

  constructor(
    private readonly pool: pg.Pool,
    private readonly groupId: string,
    private readonly batch: MicroBatch,
    partLimit: number,
    /** How the batch commits when it goes whole; parts go the ordinary way (`plainInsert` names rows of the whole). */
    private readonly options: Pick<CommitOptions, 'plainInsert'> = {},
  ) {
    this.units = rowCount(batch.rows) + batch.rejected.length;
    this.partUnits = Math.max(1, Math.min(this.units, partLimit));
  }

  /** True once the batch goes in more than one transaction. */
  get split(): boolean {
    return this.partUnits < this.units;
  }

  /** Commits the parts not yet committed; the sum of every part's result once the last is in. */
  async commitRest(): Promise<CommitResult> {
    const { rows, origins, rejected, offsets } = this.batch;
    const accepted = rowCount(rows);
    do {
      const from = this.done;
      const to = Math.min(this.units, from + this.partUnits);
      const whole = from === 0 && to === this.units;
      const [rowsFrom, rowsTo] = [Math.min(from, accepted), Math.min(to, accepted)];
      const part: MicroBatch = whole
        ? this.batch
        : {
            rows: withOwnHunts(sliceRows(rows, rowsFrom, rowsTo)),
            origins: sliceOrigins(origins, rowsFrom, rowsTo),
            rejected: rejected.slice(Math.max(from, accepted) - accepted, Math.max(to, accepted) - accepted),
            offsets: to === this.units ? offsets : floorsOnly(offsets),
          };
      const started = performance.now();
      this.failedPart = { units: to - from, ms: 0 };
      try {
        const result = await commitMicroBatch(this.pool, this.groupId, part, { ...(whole ? this.options : {}), copyRejectsToDlq: true });
        this.lastPart = { units: to - from, ms: performance.now() - started };
        this.total.inserted += result.inserted;
        this.total.duplicates += result.duplicates;
        this.total.unprocessable.push(...result.unprocessable);
        this.total.isolated ||= result.isolated;
        this.total.plainInsertConflicted ||= result.plainInsertConflicted;
        this.done = to;
      } catch (err) {
        this.failedPart.ms = performance.now() - started;
        throw err;
      }
    } while (this.done < this.units);
    return this.total;
  }

  halve(): void {
    this.partUnits = Math.max(1, Math.floor(this.failedPart.units / 2));
  }
}
