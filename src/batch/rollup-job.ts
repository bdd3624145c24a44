import { Context } from '@temporalio/activity';
import { flushRollupChunk } from '../store/batch/rollups';
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

export function createRollupActivities(deps: Pick<ActivityDeps, 'pool'>) {
  return {
    /** Flushes chunk after chunk until caught up; each chunk is its own transaction. */
    async flushRollups(input: FlushRollupsInput): Promise<FlushRollupsResult> {
      const total: FlushRollupsResult = { chunks: 0, events: 0, minuteWindows: 0, hourWindows: 0, watermark: null };
      for (;;) {
        const chunk = await flushRollupChunk(deps.pool, input.maxEventsPerChunk, input.settleMs);
        if (!chunk) return total;
        total.chunks++;
        total.events += chunk.events;
        total.minuteWindows += chunk.minuteWindows;
        total.hourWindows += chunk.hourWindows;
        total.watermark = chunk.toSeq;
        // The watermark is in Postgres, so a retried attempt simply continues from it.
        Context.current().heartbeat({ watermark: chunk.toSeq });
      }
    },
  };
}
