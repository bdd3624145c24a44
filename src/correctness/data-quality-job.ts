import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type pg from 'pg';
import { runDataQuality, type CheckProgress, type CheckReport, type DataQualityCheckpoint } from '../store/correctness/data-quality';
import { claimProgress, saveProgress } from '../store/correctness/job-progress';
import { anyCause, isConnectWait, isDatabaseUnreachable } from '../store/outage';
import { progressKeyOf } from './progress-key';
import type { ActivityDeps } from '../worker/activity-deps';

/** The heartbeat details: what a retry resumes from, and where the run is, for operators. */
export interface DataQualityHeartbeat extends DataQualityCheckpoint {
  progress?: CheckProgress;
}

const HEARTBEAT_EVERY_MS = 5000;

/**
 * A check's statement: the whole-table checks are one statement each, and the keep-alive
 * heartbeat hides a stuck one from the heartbeat timeout, so this bounds it. It is well
 * inside the activity's 2 h start-to-close timeout (workflows/data-quality.ts), so an
 * attempt ends its own statement rather than leave it running beside its retry, and a retry
 * still has time; the slowest check took 33.5 s at 7M events, so it covers a store ~50 times
 * that size.
 */
const CHECK_STATEMENT_TIMEOUT_MS = 30 * 60_000;
/**
 * The attempts a run gets for a failure that waiting does not mend: a check past its
 * statement limit (each try loads Postgres for up to 30 minutes), a lock never granted, a
 * bug. An outage is waited out however long it lasts, as rollupFlush's and reconcile's steps
 * wait it out: with a cap on every failure, a Postgres restart or failover of about 75 s
 * (five tries, a minute apart at most) failed the nightly run.
 */
export const ATTEMPTS_ON_FAULT = 5;

/** What an attempt that failed with `err` throws: `err`, or past ATTEMPTS_ON_FAULT a failure Temporal does not retry. */
export function failureOfAttempt(err: unknown, attempt: number): unknown {
  if (err instanceof CancelledFailure || attempt < ATTEMPTS_ON_FAULT) return err;
  if (anyCause(err, (e) => isDatabaseUnreachable(e) || isConnectWait(e))) return err;
  const message = err instanceof Error ? err.message : String(err);
  return ApplicationFailure.create({
    message: `${message} (attempt ${attempt}; not retried: every attempt failed this way)`,
    type: 'DataQualityCheckFailed',
    nonRetryable: true,
    cause: err instanceof Error ? err : undefined,
  });
}

/** The score-drift check waits for hunts' fences, which the hot path holds for milliseconds. */
const CHECK_LOCK_TIMEOUT_MS = 30_000;

export function createDataQualityActivities(deps: Pick<ActivityDeps, 'pool'>) {
  return {
    /**
     * Runs every check; a new run under the same run id overwrites its report rows. A
     * retried attempt resumes after the checks (and pages of hunts) that committed: the
     * checkpoint is saved in Postgres with the work (job_progress), as a heartbeat may be
     * behind it (throttled, lost with its worker), and a finished check run again after a
     * repair would find nothing and store 0.
     */
    async runDataQualityChecks(input: { runId: string; repair: boolean }): Promise<CheckReport[]> {
      const context = Context.current();
      try {
        return await runChecks(deps.pool, input, context);
      } catch (err) {
        throw failureOfAttempt(err, context.info.attempt);
      }
    },
  };
}

/** One attempt: resumes after what earlier attempts finished, beating while each check runs. */
async function runChecks(pool: pg.Pool, input: { runId: string; repair: boolean }, context: Context): Promise<CheckReport[]> {
  const key = progressKeyOf(context.info, 'runDataQualityChecks');
  // Heartbeat details only when a worker of an earlier version started the run.
  const resumed = (await claimProgress<DataQualityCheckpoint>(pool, key)) ?? (context.info.heartbeatDetails as DataQualityHeartbeat | undefined);
  // The name the run records under, in every heartbeat from the first: a retry goes on
  // under the one its run began with (progress from before names were kept per workflow
  // run has none: it began under the workflow id).
  const recordsRunId = resumed ? (resumed.recordsRunId ?? input.runId) : key.runId;
  let heartbeat: DataQualityHeartbeat = { finished: resumed?.finished ?? [], ...(resumed?.partial && { partial: resumed.partial }), recordsRunId };
  const beat = () => context.heartbeat(heartbeat);
  // A check's statement can outlast the heartbeat timeout: keep beating while it runs.
  const keepAlive = setInterval(beat, HEARTBEAT_EVERY_MS);
  try {
    return await runDataQuality(
      pool,
      input.runId,
      input.repair,
      (progress) => {
        // An attempt that timed out or was cancelled stops here rather than run on, repairing, beside its retry.
        if (context.cancellationSignal.aborted) throw new CancelledFailure(`dataQuality ${input.runId}: cancelled`);
        heartbeat = { ...heartbeat, progress };
        beat();
      },
      {
        resumeFrom: resumed,
        recordsRunId,
        // The running statement is cancelled with the attempt, and bounded in any case.
        bounds: { statementTimeoutMs: CHECK_STATEMENT_TIMEOUT_MS, lockTimeoutMs: CHECK_LOCK_TIMEOUT_MS, signal: context.cancellationSignal },
        save: (client, checkpoint) => saveProgress(client, key, checkpoint),
        checkpoint: (checkpoint) => {
          heartbeat = { ...checkpoint, progress: heartbeat.progress };
          beat();
        },
      },
    );
  } finally {
    clearInterval(keepAlive);
  }
}
