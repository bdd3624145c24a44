/**
 * What `/readyz` says about the consumer (DESIGN invariant 8: every stall is visible): it is
 * not ready while it has crashed; while it has been out of its consumer group for longer than
 * a rebalance may take plus the stall limit (kafkajs retries a join that keeps failing, with
 * a coordinator not available say, for ever, and with no partition assigned no stall could
 * show it); while a commit lane has held work it could not commit for longer than the stall
 * limit; while a partition assigned to it has records waiting and its Postgres offset has not
 * moved for that long; while records of a partition wait behind a transaction a producer has
 * kept open for that long (log-end.ts); or while a partition stopped at a retention gap. Reasons are plain
 * words for the operator: no hostnames, no driver errors (those go to the log).
 */
import type { IngestMetrics } from './metrics';

export interface LaneProbe {
  /** How long the lane has held work without committing any (MicroBatcher.stalledMs). */
  stalledMs(now: number): number;
}

/**
 * How long a rebalance may keep a healthy member out of its group: kafkajs's default
 * rebalanceTimeout (the consumer does not set it), which a join waits out for a slow peer.
 */
export const REBALANCE_TIMEOUT_MS = 60_000;

/** Times are performance.now() (monotonic), as the lanes' stalledMs: a wall-clock step must not hide a stall. */
interface Progress {
  offset: bigint | undefined;
  since: number;
}

export class IngestHealth {
  private crash: string | undefined;
  private readonly stoppedAtGap = new Map<number, string>();
  private readonly assignedAt = new Map<number, number>();
  private readonly progress = new Map<number, Progress>();
  private stalledPartitions: { partition: number; seconds: number }[] = [];
  /** Per partition, the committed end last seen and since when it has not moved. */
  private readonly stableEnd = new Map<number, { offset: bigint; since: number }>();
  private heldByTransaction: { partition: number; seconds: number; stable: bigint; logEnd: bigint }[] = [];
  /** The partitions whose lag the last observation set: one the topic no longer has loses its series. */
  private lagSeries = new Set<number>();
  /** Since when the consumer has not been a member of its group (from the start until the first join). */
  private outOfGroupSince: number | undefined;
  /** Since when the monitor has not been able to read the partitions' offsets (Postgres or Kafka unreachable). */
  private unobservedSince: number | undefined;

  constructor(
    private readonly options: { stallLimitMs: number; lanes: readonly LaneProbe[]; partitionsOfLane: (lane: number) => number[]; metrics: IngestMetrics },
    now = performance.now(),
  ) {
    this.outOfGroupSince = now;
  }

  /** The consumer died and will not restart by itself. */
  markCrashed(reason: string): void {
    this.crash = reason;
  }

  /** The consumer left its group (a rebalance began, or it crashed and kafkajs restarts it); setAssignment ends it. */
  markOutOfGroup(now = performance.now()): void {
    this.outOfGroupSince ??= now;
  }

  /**
   * The monitor could not read the partitions' offsets. Past the stall limit that is a stall
   * of its own: the partitions' progress is unknown, and what was seen last goes stale.
   */
  markUnobserved(now = performance.now()): void {
    this.unobservedSince ??= now;
  }

  markStoppedAtGap(partition: number, reason: string): void {
    this.stoppedAtGap.set(partition, reason);
  }

  isStoppedAtGap(partition: number): boolean {
    return this.stoppedAtGap.has(partition);
  }

  /** The partitions this member owns after a (re)join. */
  setAssignment(partitions: readonly number[], now = performance.now()): void {
    this.outOfGroupSince = undefined;
    const kept = new Map<number, number>();
    for (const p of partitions) kept.set(p, this.assignedAt.get(p) ?? now);
    this.assignedAt.clear();
    for (const [p, at] of kept) this.assignedAt.set(p, at);
  }

  assignedPartitions(): number[] {
    return [...this.assignedAt.keys()].sort((a, b) => a - b);
  }

  /**
   * One look at every partition: records waiting (high watermark minus the Postgres offset,
   * or the log start where Postgres has none) and whether the Postgres offset moved.
   */
  observePartitions(
    watermarks: ReadonlyMap<number, { low: bigint; high: bigint; logEnd?: bigint }>,
    stored: ReadonlyMap<number, bigint>,
    topic: string,
    now = performance.now(),
  ): void {
    this.unobservedSince = undefined;
    const stalled: { partition: number; seconds: number }[] = [];
    const held: typeof this.heldByTransaction = [];
    for (const [partition, { low, high, logEnd }] of watermarks) {
      const offset = stored.get(partition);
      const position = offset === undefined || offset < low ? low : offset;
      const waiting = high > position ? high - position : 0n;
      this.options.metrics.consumerLag.set({ topic, partition: String(partition) }, Number(waiting));
      // Each clock runs from when its condition began, not from the offset's last move: a
      // partition idle past the stall limit read as stalled at the first tick that saw a new
      // record before its commit (every idle-to-busy turn with a long linger).
      const seen = this.progress.get(partition);
      if (!seen || seen.offset !== offset || waiting === 0n) this.progress.set(partition, { offset, since: now });
      const stable = this.stableEnd.get(partition);
      const heldBack = logEnd !== undefined && logEnd > high;
      if (!stable || stable.offset !== high || !heldBack) this.stableEnd.set(partition, { offset: high, since: now });
      const assignedAt = this.assignedAt.get(partition);
      if (assignedAt === undefined) continue;
      if (waiting > 0n) {
        const stuckMs = now - Math.max(assignedAt, this.progress.get(partition)?.since ?? now);
        if (stuckMs > this.options.stallLimitMs) stalled.push({ partition, seconds: Math.round(stuckMs / 1000) });
      } else if (heldBack) {
        // Caught up with every committed record, and the committed end has not moved while
        // the log goes on past it: a transaction holds the rest back.
        const heldMs = now - Math.max(assignedAt, this.stableEnd.get(partition)?.since ?? now);
        if (heldMs > this.options.stallLimitMs) held.push({ partition, seconds: Math.round(heldMs / 1000), stable: high, logEnd });
      }
    }
    this.stalledPartitions = stalled;
    this.heldByTransaction = held;
    // A topic recreated with fewer partitions: the others' last lag would be shown for ever.
    for (const partition of this.lagSeries) {
      if (!watermarks.has(partition)) this.options.metrics.consumerLag.remove({ topic, partition: String(partition) });
    }
    this.lagSeries = new Set(watermarks.keys());
  }

  /**
   * The stops at a retention gap of the partitions this member owns. One now another member's
   * is that member's to report: reported here, it held this process's /readyz at 503 (and its
   * read API out of a load balancer) for as long as it ran. Kept, not forgotten: kafkajs keeps
   * the partition paused across rebalances, so should it come back it is stopped still, and
   * says why again.
   */
  private stopsAtGapOwned(): string[] {
    return [...this.stoppedAtGap].filter(([partition]) => this.assignedAt.has(partition)).map(([, reason]) => reason);
  }

  /** Ready, or the first reason not to be. Also refreshes the stall gauges. */
  status(now = performance.now()): { ready: true } | { ready: false; reason: string } {
    const { lanes, stallLimitMs, metrics, partitionsOfLane } = this.options;
    const laneStalls: { lane: number; seconds: number }[] = [];
    lanes.forEach((lane, index) => {
      const ms = lane.stalledMs(now);
      metrics.laneStalledSeconds.set({ lane: String(index) }, ms / 1000);
      if (ms > stallLimitMs) laneStalls.push({ lane: index, seconds: Math.round(ms / 1000) });
    });
    const limit = `${Math.round(stallLimitMs / 1000)} s`;
    let reason: string | undefined;
    const outOfGroupMs = this.outOfGroupSince === undefined ? 0 : now - this.outOfGroupSince;
    const unobservedMs = this.unobservedSince === undefined ? 0 : now - this.unobservedSince;
    const gapStops = this.stopsAtGapOwned();
    if (this.crash) reason = `consumer stopped: ${this.crash}`;
    else if (outOfGroupMs > stallLimitMs + REBALANCE_TIMEOUT_MS) {
      reason = `the consumer has not been a member of its group for ${Math.round(outOfGroupMs / 1000)} s (a rebalance may take ${REBALANCE_TIMEOUT_MS / 1000} s, plus the stall limit ${limit}); it keeps trying to join (see the log: is Kafka's group coordinator available?)`;
    } else if (gapStops.length > 0) reason = gapStops.join('; ');
    else if (unobservedMs > stallLimitMs) {
      reason = `the partitions' progress could not be read for ${Math.round(unobservedMs / 1000)} s (stall limit ${limit}): Postgres or Kafka unreachable (the log says which)`;
    } else if (laneStalls.length > 0) {
      const stall = laneStalls[0] as { lane: number; seconds: number };
      reason = `commit lane ${stall.lane} (partitions ${partitionsOfLane(stall.lane).join(', ') || 'none'}) has not committed for ${stall.seconds} s (stall limit ${limit})`;
    } else if (this.stalledPartitions.length > 0) {
      const parts = this.stalledPartitions.map((s) => `${s.partition} (${s.seconds} s)`).join(', ');
      reason = `partition(s) ${parts} have records waiting and no progress in Postgres (stall limit ${limit})`;
    } else if (this.heldByTransaction.length > 0) {
      const parts = this.heldByTransaction.map((h) => `${h.partition} (records from offset ${h.stable} to ${h.logEnd}, ${h.seconds} s)`).join(', ');
      reason =
        `partition(s) ${parts} wait behind a transaction a producer has left open: the consumer reads committed records only ` +
        `(the broker aborts it after its transaction.max.timeout.ms; find the producer with kafka-transactions.sh find-hanging)`;
    }
    metrics.stalled.set(reason ? 1 : 0);
    return reason ? { ready: false, reason } : { ready: true };
  }
}

/**
 * Until the consumer runs, no IngestHealth exists to set `hunt_ingest_stalled`, and a process
 * waiting at start-up (for a Kafka that cannot be reached, or a slow broker) served it as 0:
 * HuntIngestStalled could not fire, and HuntIngestDown saw a process up. Past the limit the
 * consumer's health gives a member out of its group (the stall limit and a rebalance's time),
 * counted from `startedAt`, the gauge says 1; the health, counting from the same instant
 * (CommitLaneDeps.startedAt), takes it over where this left it once it reports.
 */
export function watchStartup(metrics: Pick<IngestMetrics, 'stalled'>, stallLimitMs: number, startedAt = performance.now()): { startedAt: number; started(): void } {
  const timer = setTimeout(() => metrics.stalled.set(1), Math.max(0, startedAt + stallLimitMs + REBALANCE_TIMEOUT_MS - performance.now()));
  timer.unref();
  return { startedAt, started: () => clearTimeout(timer) };
}
