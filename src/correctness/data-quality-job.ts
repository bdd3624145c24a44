import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type pg from 'pg';
import { runDataQuality, type CheckProgress, type CheckReport, type DataQualityCheckpoint } from '../store/correctness/data-quality';
import { claimProgress, countFault, saveProgress, type ProgressKey } from '../store/correctness/job-progress';
import { anyCause, failsEveryStatement } from '../store/outage';
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
/** The score-drift check waits for hunts' fences, which the hot path holds for milliseconds. */
const CHECK_LOCK_TIMEOUT_MS = 30_000;
/**
 * The failures in a row, with no progress saved between them, after which a run gives up:
 * a check past its statement limit (each try loads Postgres for up to 30 minutes), a lock
 * never granted, a bug. An outage is waited out however long it lasts, as rollupFlush's and
 * reconcile's steps wait it out (a cap on every attempt failed the nightly run on a Postgres
 * restart or failover of about 75 s), and so is an attempt stopped by Temporal (cancelled,
 * timed out, its worker shutting down). Attempts that time out on the server (a worker that
 * dies under a check) are Temporal's to retry, without a cap: HuntJobStepTimingOut says so.
 */
export const FAULTS_IN_A_ROW = 5;

/** What an attempt that failed with `err`, the `faults`-th failure in a row, throws: `err`, or from FAULTS_IN_A_ROW on a failure Temporal does not retry. */
function failureOfAttempt(err: unknown, faults: number | undefined): unknown {
  if (faults === undefined || faults < FAULTS_IN_A_ROW) return err;
  const message = err instanceof Error ? err.message : String(err);
  return ApplicationFailure.create({
    message: `${message} (failure ${faults} in a row with no progress; not retried)`,
    type: 'DataQualityCheckFailed',
    nonRetryable: true,
    cause: err instanceof Error ? err : undefined,
  });
}

/** A failure that waiting mends, or one of the attempt's own ending: retried without counting it. */
function waitedOut(err: unknown, context: Context): boolean {
  return context.cancellationSignal.aborted || err instanceof CancelledFailure || anyCause(err, failsEveryStatement);
}

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
      const key = progressKeyOf(context.info, 'runDataQualityChecks');
      try {
        return await runChecks(deps.pool, input, context, key);
      } catch (err) {
        if (waitedOut(err, context)) throw err;
        // Not counted (retried) when Postgres cannot take the count.
        throw failureOfAttempt(err, await countFault(deps.pool, key).catch(() => undefined));
      }
    },
  };
}

/** One attempt: resumes after what earlier attempts finished, beating while each check runs. */
async function runChecks(pool: pg.Pool, input: { runId: string; repair: boolean }, context: Context, key: ProgressKey): Promise<CheckReport[]> {
  // The failures counted beside the progress (countFault) are no progress of their own.
  const { faults: _faults, ...saved } = (await claimProgress<DataQualityCheckpoint & { faults?: number }>(pool, key)) ?? {};
  // Heartbeat details only when a worker of an earlier version started the run.
  const resumed = Object.keys(saved).length > 0 ? (saved as DataQualityCheckpoint) : (context.info.heartbeatDetails as DataQualityHeartbeat | undefined);
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
