import { CancelledFailure, Context } from '@temporalio/activity';
import { flushRollupChunk } from '../store/batch/rollups';
import type { StatementBounds } from '../store/bounded-transaction';
import type { ActivityDeps } from '../worker/activity-deps';

export interface FlushRollupsInput {
  maxEventsPerChunk: number;
  settleMs: number;
}

export interface FlushRollupsResult {
  chunks: number;
  events: number;
  minuteWindows: number;
  hourWindows: number;
  watermark: number | null;
}

/**
 * Below the step's 60 s heartbeat timeout (workflows/rollup-flush.ts), which a chunk's
 * transaction runs within: a statement still running when the server has given up on the
 * attempt would hold its connection and the watermark row's lock against the retry.
 */
const CHUNK_STATEMENT_TIMEOUT_MS = 45_000;
/** Another flush holding the watermark row, or a writer's lock: waited for, but not for ever. */
const CHUNK_LOCK_TIMEOUT_MS = 30_000;

export function createRollupActivities(deps: Pick<ActivityDeps, 'pool'>) {
  return {
    /** Flushes chunk after chunk until caught up; each chunk is its own transaction. */
    async flushRollups(input: FlushRollupsInput): Promise<FlushRollupsResult> {
      const context = Context.current();
      const total: FlushRollupsResult = { chunks: 0, events: 0, minuteWindows: 0, hourWindows: 0, watermark: null };
      const bounds: StatementBounds = { statementTimeoutMs: CHUNK_STATEMENT_TIMEOUT_MS, lockTimeoutMs: CHUNK_LOCK_TIMEOUT_MS, signal: context.cancellationSignal };
      for (;;) {
        // Stop between chunks once the attempt is over; the watermark is in Postgres, so the retry continues from it.
        if (context.cancellationSignal.aborted) throw new CancelledFailure('rollupFlush: cancelled');
        // Before the chunk too, not only after: each chunk gets the whole heartbeat timeout,
        // and an attempt the server gave up on hears of it before starting another.
        context.heartbeat({ watermark: total.watermark });
        const chunk = await flushRollupChunk(deps.pool, input.maxEventsPerChunk, input.settleMs, bounds);
        if (!chunk) return total;
        total.chunks++;
        total.events += chunk.events;
        total.minuteWindows += chunk.minuteWindows;
        total.hourWindows += chunk.hourWindows;
        total.watermark = chunk.toSeq;
        context.heartbeat({ watermark: chunk.toSeq });
      }
    },
  };
}
