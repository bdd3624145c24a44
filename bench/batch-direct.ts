/**
 * The batch jobs without Temporal: the same activity functions (createActivities, the code
 * the worker runs) called in a plain loop that makes the calls the workflow makes, with the
 * same inputs, each in a MockActivityEnvironment (an activity Context without a server;
 * heartbeats go nowhere). What differs from a workflow run is Temporal alone: task
 * scheduling and dispatch, persistence of history, heartbeats to the server.
 *
 * The constants mirror workflows/backfill.ts and workflows/reprocess.ts (not exported
 * there); change them together.
 */
import { DefaultLogger } from '@temporalio/worker';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Activities } from '../src/worker/activities';
import type { FillProgress, SwapResult } from '../src/batch/reprocess-job';
import { addCounts, emptyCounts, type ImportCounts } from '../src/batch/backfill/counts';
import type { BackfillCursor, FileSource, KafkaSource } from '../src/batch/backfill/types';

/** workflows/backfill.ts: CHUNKS_PER_ACTIVITY. */
const CHUNKS_PER_ACTIVITY = 10;
/** workflows/reprocess.ts: FILL_TIME_BUDGET_MS, LOCK_TIMEOUT_MS, CATCH_UP. */
const FILL_TIME_BUDGET_MS = 20_000;
const LOCK_TIMEOUT_MS = 5_000;
const CATCH_UP = { maxEventsPerRound: 200_000, smallRound: 5_000, maxRounds: 50 };

const quiet = new DefaultLogger('WARN');

/** One activity call outside Temporal, in a fresh activity context (no heartbeat details: never a resume). */
function call<P extends unknown[], R>(fn: (...args: P) => Promise<R>, ...args: P): Promise<R> {
  return new MockActivityEnvironment(undefined, { logger: quiet }).run(fn, ...args);
}

export interface DirectBackfillResult {
  counts: ImportCounts;
  activityCalls: number;
}

/** workflows/backfill.ts without Temporal: describe the source, then importChunks until done. */
export async function backfillDirect(activities: Activities, file: string, chunkSize: number, jobId: string): Promise<DirectBackfillResult> {
  const source: FileSource = { kind: 'file', path: file };
  await call(activities.describeBackfillSource, source);
  let cursor: BackfillCursor = { file: { byteOffset: 0, line: 1 } };
  let counts = emptyCounts();
  let activityCalls = 1;
  for (;;) {
    const result = await call(activities.importChunks, { jobId, source, cursor, chunkSize, maxChunks: CHUNKS_PER_ACTIVITY, dryRun: false });
    activityCalls++;
    cursor = result.cursor;
    counts = addCounts(counts, result.counts);
    if (result.done) return { counts, activityCalls };
  }
}

/** The same for a Kafka topic: describe it (its offset range, fixed now), then importChunks over that range until done. */
export async function backfillKafkaDirect(activities: Activities, topic: string, chunkSize: number, jobId: string): Promise<DirectBackfillResult> {
  const source: KafkaSource = { kind: 'kafka', topic };
  const { range } = await call(activities.describeBackfillSource, source);
  let cursor: BackfillCursor = { kafka: range?.start };
  let counts = emptyCounts();
  let activityCalls = 1;
  for (;;) {
    const result = await call(activities.importChunks, { jobId, source, cursor, chunkSize, maxChunks: CHUNKS_PER_ACTIVITY, dryRun: false, range });
    activityCalls++;
    cursor = result.cursor;
    counts = addCounts(counts, result.counts);
    if (result.done) return { counts, activityCalls };
  }
}

export interface DirectReprocessResult extends SwapResult {
  huntsTotal: number;
  activityCalls: number;
}

/** workflows/reprocess.ts without Temporal: prepare, fill until done, catch up, swap. */
export async function reprocessDirect(activities: Activities, huntsPerChunk: number, jobId: string): Promise<DirectReprocessResult> {
  const step = { projection: 'leaderboard', jobId, lockTimeoutMs: LOCK_TIMEOUT_MS };
  await call(activities.prepareShadow, step);
  let activityCalls = 1;
  let filled: FillProgress;
  do {
    filled = await call(activities.fillShadow, { ...step, huntsPerChunk, timeBudgetMs: FILL_TIME_BUDGET_MS });
    activityCalls++;
  } while (!filled.done);
  await call(activities.catchUpShadow, { ...step, ...CATCH_UP });
  const swapped = await call(activities.swapShadow, step);
  return { ...swapped, huntsTotal: filled.huntsTotal, activityCalls: activityCalls + 2 };
}
