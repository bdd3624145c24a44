import { CancelledFailure, Context } from '@temporalio/activity';
import { replayBatch, type ReplayBatchResult, type ReplayFilter } from '../store/correctness/dlq-replay';
import type { ActivityDeps } from '../worker/activity-deps';

export interface ReplayInput extends ReplayFilter {
  batchSize: number;
  dryRun: boolean;
}

/** A replay's counts summed over its batches; lastId is the resume point. */
export type ReplayTotals = ReplayBatchResult;

export function createDlqReplayActivities(deps: Pick<ActivityDeps, 'pool'>) {
  return {
    /** Replays batch after batch until none is left; heartbeats the id cursor. */
    async replayQuarantined(input: ReplayInput): Promise<ReplayTotals> {
      const context = Context.current();
      const totals: ReplayTotals = (context.info.heartbeatDetails as ReplayTotals | undefined) ?? {
        examined: 0,
        replayed: 0,
        duplicates: 0,
        stillInvalid: {},
        lastId: 0,
      };
      for (;;) {
        // Throw, never return: a return would end the run as a success with rows left
        // unreplayed (a worker's graceful shutdown aborts us on every deploy). The retry
        // resumes from the heartbeated cursor.
        if (context.cancellationSignal.aborted) throw new CancelledFailure(`dlqReplay: stopped after quarantine id ${totals.lastId}`);
        const batch = await replayBatch(deps.pool, input, totals.lastId, input.batchSize, input.dryRun);
        if (!batch) return totals;
        totals.lastId = batch.lastId;
        totals.examined += batch.examined;
        totals.replayed += batch.replayed;
        totals.duplicates += batch.duplicates;
        for (const [reason, n] of Object.entries(batch.stillInvalid)) totals.stillInvalid[reason] = (totals.stillInvalid[reason] ?? 0) + n;
        context.heartbeat(totals);
      }
    },
  };
}
