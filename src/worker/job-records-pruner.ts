/**
 * The worker's hourly pruning of past runs' records (store/correctness/job-records-retention.ts).
 * A timer, not a Temporal job: deleting rows past an age is idempotent and harmless to run
 * twice, so every worker may run it, and a missed hour is made up by the next.
 */
import type pg from 'pg';
import type { Logger } from '../log';
import { pruneJobRecords } from '../store/correctness/job-records-retention';

const EVERY_MS = 60 * 60_000;
/** The first pass waits this long, so a worker's start-up (and a crash loop) costs Postgres nothing. */
const FIRST_AFTER_MS = 60_000;

export interface JobRecordsPruner {
  /** No pass starts after this, and a running one ends after its statement; resolves then (before the pool closes). */
  stop(): Promise<void>;
}

export function startJobRecordsPruner(pool: pg.Pool, keepDays: number, logger: Logger, timing = { firstAfterMs: FIRST_AFTER_MS, everyMs: EVERY_MS }): JobRecordsPruner {
  let running: Promise<void> | undefined;
  const stopping = new AbortController();
  const prune = async () => {
    if (running) return;
    running = pass();
    await running;
    running = undefined;
  };
  const pass = async () => {
    try {
      const deleted = await pruneJobRecords(pool, keepDays, undefined, stopping.signal);
      if (Object.values(deleted).some((n) => n > 0)) logger.info({ deleted, keepDays }, 'deleted job records past JOB_RECORDS_KEEP_DAYS');
    } catch (err) {
      logger.warn({ err }, 'could not delete old job records; the next pass tries again');
    }
  };
  let interval: NodeJS.Timeout | undefined;
  const first = setTimeout(() => {
    void prune();
    interval = setInterval(() => void prune(), timing.everyMs);
    interval.unref();
  }, timing.firstAfterMs);
  first.unref();
  return {
    async stop() {
      stopping.abort();
      clearTimeout(first);
      clearInterval(interval);
      await running;
    },
  };
}
