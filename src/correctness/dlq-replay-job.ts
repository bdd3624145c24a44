import { CancelledFailure, Context } from '@temporalio/activity';
import { newestQuarantineId, replayBatch, type ReplayBatchResult, type ReplayFilter } from '../store/correctness/dlq-replay';
import { claimProgress, saveProgress } from '../store/correctness/job-progress';
import { advanceSequences, SeqNotMovableError } from '../store/serial-sequences';
import { EVENT_COMMIT_LIMITS } from '../store/bounded-transaction';
import { progressKeyOf } from './progress-key';
import type { ActivityDeps } from '../worker/activity-deps';

export interface ReplayInput extends ReplayFilter {
  batchSize: number;
  dryRun: boolean;
}

/**
 * A replay's counts summed over its batches; lastId is the resume point, throughId the last
 * quarantine id the run replays (the newest when it began; absent in an older worker's).
 */
export type ReplayTotals = ReplayBatchResult & { throughId?: number };

const EMPTY_TOTALS: ReplayTotals = { examined: 0, replayed: 0, duplicates: 0, stillInvalid: {}, lastId: 0 };

/** The totals with a batch added (a new object: the heartbeat may still hold the old one). */
export function addBatch(totals: ReplayTotals, batch: ReplayBatchResult): ReplayTotals {
  const stillInvalid = { ...totals.stillInvalid };
  for (const [reason, n] of Object.entries(batch.stillInvalid)) stillInvalid[reason] = (stillInvalid[reason] ?? 0) + n;
  return {
    ...totals,
    lastId: batch.lastId,
    examined: totals.examined + batch.examined,
    replayed: totals.replayed + batch.replayed,
    duplicates: totals.duplicates + batch.duplicates,
    stillInvalid,
  };
}

/** How often the last totals are heartbeated again while a batch replays: well within the step's 30 s heartbeat timeout. */
const KEEPALIVE_MS = 5000;

/**
 * Records per batch after a batch the database refused records of. Each refused record is
 * isolated under savepoints, the batch's hunts locked all along: a batch of 1,000 refused
 * records (a replay started before the fix that would let them in) held them for seconds,
 * and the hot path's commits of those hunts waited, batch after batch. Small batches hold
 * them for a fraction of a second at a time; a batch that goes in whole doubles the size
 * back towards the run's own.
 */
export const REFUSING_BATCH_SIZE = 50;

/** The next batch's size, after a batch that had `refused` records the database refused. */
export function nextBatchSize(current: number, runSize: number, refused: number): number {
  return refused > 0 ? Math.min(runSize, REFUSING_BATCH_SIZE) : Math.min(runSize, current * 2);
}

export function createDlqReplayActivities(deps: Pick<ActivityDeps, 'pool'>) {
  return {
    /**
     * Replays batch after batch until none is left. The totals and the id cursor are saved
     * in each batch's own transaction, so a retry resumes exactly where the committed work
     * ends: a heartbeat (throttled, lost with its worker) may be batches behind, and the
     * rows of those batches, already marked replayed, would not be counted again.
     */
    async replayQuarantined(input: ReplayInput): Promise<ReplayTotals> {
      const context = Context.current();
      // The run's totals live in job_progress, saved in each batch's transaction.
      const key = progressKeyOf(context.info, 'replayQuarantined');
      // Heartbeat details only when a worker of an earlier version started the run.
      let totals = (await claimProgress<ReplayTotals>(deps.pool, key)) ?? (context.info.heartbeatDetails as ReplayTotals | undefined) ?? EMPTY_TOTALS;
      // The run ends at the newest record quarantined when it began, saved with its progress:
      // records quarantined faster than it replays (a flood of rejects) kept a run going
      // without end, past its timeout, retried for ever. Later ones are the next run's.
      if (totals.throughId === undefined) totals = { ...totals, throughId: await newestQuarantineId(deps.pool) };
      // The events' seq sequence behind the stored events (serial-sequences.ts) fails the
      // replay's inserts, on every attempt until something moves it: each attempt moves it first.
      await advanceSequences(deps.pool).catch((err: unknown) => {
        if (err instanceof SeqNotMovableError) throw err;
      });
      // Sent again while a batch replays: a batch outlasting the heartbeat timeout (thousands of
      // records the database still refuses, isolated one by one) had its attempt timed out and
      // its work rolled back by the retry, which took as long again, attempt after attempt.
      const keepAlive = setInterval(() => context.heartbeat(totals), KEEPALIVE_MS);
      try {
        return await replayAll();
      } finally {
        clearInterval(keepAlive);
      }

      async function replayAll(): Promise<ReplayTotals> {
        let batchSize = input.batchSize;
        for (;;) {
          // Throw, never return: a return would end the run as a success with rows left
          // unreplayed (a worker's graceful shutdown aborts us on every deploy). The retry
          // resumes from the saved cursor.
          if (context.cancellationSignal.aborted) throw new CancelledFailure(`dlqReplay: stopped after quarantine id ${totals.lastId}`);
          let next = totals;
          const batch = await replayBatch(deps.pool, { ...input, throughId: totals.throughId }, totals.lastId, batchSize, input.dryRun, {
            record: async (client, done) => {
              next = addBatch(totals, done);
              await saveProgress(client, key, next);
            },
            bounds: { ...EVENT_COMMIT_LIMITS, signal: context.cancellationSignal },
          });
          if (!batch) return totals;
          batchSize = nextBatchSize(batchSize, input.batchSize, batch.stillInvalid.unprocessable ?? 0);
          totals = next;
          context.heartbeat(totals);
        }
      }
    },
  };
}
