import { CancelledFailure, Context } from '@temporalio/activity';
import { flushRollupChunk } from '../store/batch/rollups';
import { newestEventSeq } from '../store/batch/settled-seq';
import type { StatementBounds } from '../store/bounded-transaction';
import { SqlState, sqlStateOf } from '../store/sql-state';
import type { ActivityDeps } from '../worker/activity-deps';

export interface FlushRollupsInput {
  maxEventsPerChunk: number;
  settleMs: number;
  /** How long an attempt flushes before it leaves the rest to the next run; RUN_TIME_BUDGET_MS unless set (tests). */
  timeBudgetMs?: number;
}

export interface FlushRollupsResult {
  /** What this attempt flushed (a retried step reports its own attempt's work). */
  chunks: number;
  events: number;
  minuteWindows: number;
  hourWindows: number;
  /** The seq the watermark was moved to last, or null when this attempt moved it not at all. */
  watermark: number | null;
  /** The newest seq stored when the run began: the run flushes no further, whatever arrives meanwhile. */
  targetSeq: number;
  /**
   * `caught up`: nothing settled is left at or below targetSeq (events of the last
   * `settleMs` may be, for the next run). `time budget`: the step stopped after its budget;
   * the next run goes on from the watermark.
   */
  stoppedBy: 'caught up' | 'time budget';
}

/** What a retried attempt takes over: the run's target, so retries do not chase newer events either, and the chunk size it came down to. */
interface FlushHeartbeat {
  watermark: number | null;
  targetSeq?: number;
  chunkEvents?: number;
}

/**
 * Each statement of a chunk's transaction. A chunk has several, and lock waits, so the step
 * heartbeats while one runs (CHUNK_BEAT_MS): an attempt is not timed out under its own chunk,
 * and a cancellation (which reaches the step by its heartbeats) cancels the running statement
 * at once. A stuck chunk still ends: every statement and lock wait is bounded.
 */
const CHUNK_STATEMENT_TIMEOUT_MS = 45_000;
/** How often the step heartbeats while a chunk runs: well inside its 60 s heartbeat timeout (workflows/rollup-flush.ts). */
const CHUNK_BEAT_MS = 5000;
/** Another flush holding the watermark row, or a writer's lock: waited for, but not for ever. */
const CHUNK_LOCK_TIMEOUT_MS = 30_000;
/**
 * A backlog bigger than an attempt can flush in this time (after an outage, or ingest
 * outpacing flushes) is left to the next runs, the schedule's every minute: well inside the
 * step's 30 min start-to-close timeout, so a run ends with a result, not a timeout.
 */
export const RUN_TIME_BUDGET_MS = 10 * 60_000;

export function createRollupActivities(deps: Pick<ActivityDeps, 'pool'>) {
  return {
    /**
     * Flushes chunk after chunk, each its own transaction, up to the newest seq stored when
     * the run began, or until its time budget is spent.
     */
    async flushRollups(input: FlushRollupsInput): Promise<FlushRollupsResult> {
      const context = Context.current();
      const startedAt = performance.now(); // monotonic: a wall-clock step must not stretch or end the budget
      const resumed = context.info.heartbeatDetails as FlushHeartbeat | undefined;
      const targetSeq = resumed?.targetSeq ?? (await newestEventSeq(deps.pool));
      const total: FlushRollupsResult = { chunks: 0, events: 0, minuteWindows: 0, hourWindows: 0, watermark: null, targetSeq, stoppedBy: 'caught up' };
      // A chunk rewrites every hour its events touch, counting each hour's noted players: a
      // chunk of late events spread over many busy hours (a DLQ replay, a backfill of a lost
      // range) can outlast the statement limit, and then does so on every attempt, for ever.
      // Such a chunk is tried again at half the size, down to one event, and later chunks
      // keep that size.
      let chunkEvents = Math.min(input.maxEventsPerChunk, resumed?.chunkEvents ?? input.maxEventsPerChunk);
      const beat = () => context.heartbeat({ watermark: total.watermark, targetSeq, chunkEvents } satisfies FlushHeartbeat);
      const bounds: StatementBounds = { statementTimeoutMs: CHUNK_STATEMENT_TIMEOUT_MS, lockTimeoutMs: CHUNK_LOCK_TIMEOUT_MS, signal: context.cancellationSignal };
      for (;;) {
        // Stop between chunks once the attempt is over; the watermark is in Postgres, so the retry continues from it.
        if (context.cancellationSignal.aborted) throw new CancelledFailure('rollupFlush: cancelled');
        // Before the chunk too, not only after: each chunk gets the whole heartbeat timeout,
        // an attempt the server gave up on hears of it before starting another, and the
        // first beat records the target for a retry.
        beat();
        let chunk: Awaited<ReturnType<typeof flushRollupChunk>>;
        const keepAlive = setInterval(beat, CHUNK_BEAT_MS);
        try {
          chunk = await flushRollupChunk(deps.pool, chunkEvents, input.settleMs, bounds, targetSeq);
        } catch (err) {
          if (sqlStateOf(err) !== SqlState.queryCanceled || chunkEvents === 1 || context.cancellationSignal.aborted) throw err;
          chunkEvents = Math.max(1, Math.floor(chunkEvents / 2));
          context.log.warn('rollupFlush: a chunk outlasted the statement limit; trying it again at half the size', { chunkEvents });
          continue;
        } finally {
          clearInterval(keepAlive);
        }
        if (!chunk) return total;
        total.chunks++;
        total.events += chunk.events;
        total.minuteWindows += chunk.minuteWindows;
        total.hourWindows += chunk.hourWindows;
        total.watermark = chunk.toSeq;
        beat();
        if (chunk.toSeq >= targetSeq) return total;
        if (performance.now() - startedAt >= (input.timeBudgetMs ?? RUN_TIME_BUDGET_MS)) return { ...total, stoppedBy: 'time budget' };
      }
    },
  };
}
