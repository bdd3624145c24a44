/**
 * The freshness SLO's counts: per minute, events committed and how many within the target
 * (commit time minus Kafka timestamp, measured as hunt_ingest_freshness_seconds is, at the
 * same moment). Kept in memory and added to Postgres every few seconds by one statement,
 * so the hot path pays a comparison per event and no round trip per micro-batch.
 *
 * What a crash loses: the counts of the last interval (as a Prometheus scrape would), never
 * events. Counts a write could not store are kept for the next one.
 */
import type pg from 'pg';
import type { Logger } from '../log';
import { addFreshnessCounts, pruneFreshnessMinutes, type FreshnessCount } from '../store/hot-path/freshness-minutes';

const MINUTE_MS = 60_000;

export class FreshnessTally {
  private readonly minutes = new Map<number, { events: number; withinTarget: number }>();

  constructor(readonly targetMs: number) {}

  /** Events committed at `committedAtMs` whose records carry these Kafka timestamps. */
  observe(committedAtMs: number, timestampsMs: ArrayLike<number>): void {
    if (timestampsMs.length === 0) return;
    let within = 0;
    for (let i = 0; i < timestampsMs.length; i++) if (committedAtMs - (timestampsMs[i] as number) <= this.targetMs) within++;
    this.add(committedAtMs - (committedAtMs % MINUTE_MS), timestampsMs.length, within);
  }

  /** Takes every count so far, leaving the tally empty. */
  take(): FreshnessCount[] {
    const counts = [...this.minutes].map(([minuteMs, c]) => ({ minuteMs, ...c }));
    this.minutes.clear();
    return counts;
  }

  /** Returns counts a write could not store, to go with the next. */
  putBack(counts: readonly FreshnessCount[]): void {
    for (const c of counts) this.add(c.minuteMs, c.events, c.withinTarget);
  }

  private add(minuteMs: number, events: number, withinTarget: number): void {
    const seen = this.minutes.get(minuteMs);
    if (seen) {
      seen.events += events;
      seen.withinTarget += withinTarget;
    } else {
      this.minutes.set(minuteMs, { events, withinTarget });
    }
  }
}

export interface FreshnessRecorderOptions {
  pool: pg.Pool;
  tally: FreshnessTally;
  logger: Logger;
  /** How often counts go to Postgres. */
  everyMs?: number;
  /** Minutes older than this are deleted (checked hourly). */
  keepMs?: number;
}

/** Writes the tally to Postgres on a timer; stop() writes what is left. */
export function startFreshnessRecorder(options: FreshnessRecorderOptions): { stop(): Promise<void>; write(): Promise<void> } {
  const { pool, tally, logger, everyMs = 10_000, keepMs = 90 * 24 * 3_600_000 } = options;
  let lastPruneMs = 0;
  let writing: Promise<void> = Promise.resolve();
  const write = async () => {
    const counts = tally.take();
    try {
      await addFreshnessCounts(pool, tally.targetMs, counts);
    } catch (err) {
      tally.putBack(counts);
      logger.warn({ err }, 'could not store freshness counts for hunt slo; keeping them for the next try');
      return;
    }
    if (Date.now() - lastPruneMs > 3_600_000) {
      lastPruneMs = Date.now();
      await pruneFreshnessMinutes(pool, Date.now() - keepMs).catch((err: unknown) => logger.warn({ err }, 'could not delete old freshness counts'));
    }
  };
  // One write at a time, so counts taken by one are never overtaken by the next.
  const serialized = () => (writing = writing.then(write));
  const timer = setInterval(() => void serialized(), everyMs);
  timer.unref();
  return {
    write: serialized,
    async stop() {
      clearInterval(timer);
      await serialized();
    },
  };
}
