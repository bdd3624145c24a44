/**
 * Reprocess steps (the algorithm is in src/store/batch/reprocess.ts). Each step is idempotent and
 * commits its progress in Postgres with the work it covers (fill cursor, covered seq), so a
 * retried step resumes from the database, which is never behind: a heartbeat sent after a
 * commit can be lost with the worker, the commit cannot. Heartbeats report progress and
 * keep long steps alive while one chunk's SQL runs.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import {
  assertLiveTablesReplaceable,
  catchUpShadow,
  fillShadowChunk,
  FILL_EVENTS_PER_CHUNK,
  FILL_STATEMENT_MS,
  isProjectionName,
  prepareShadow,
  ReprocessBlockedError,
  ReprocessCancelledError,
  swappedJob,
  ReprocessStateError,
  ReprocessSupersededError,
  swapShadow,
  settleCancelledSwap,
  type CatchUpResult,
  type FillProgress,
  type PrepareResult,
  type ProjectionName,
  type SwapResult,
} from '../store/batch/reprocess';
import type { ActivityDeps } from '../worker/activity-deps';
import { describeDataError, exceededTempFileLimit, isDataError } from '../store/hot-path/errors';
import { SqlState, sqlStateOf } from '../store/sql-state';

export interface ReprocessStepInput {
  projection: string;
  /** `<workflowId>/<runId>`: the run that owns the shadow tables. */
  jobId: string;
  /** How long a step queues for the fence before the attempt fails (it is retried). */
  lockTimeoutMs: number;
}

export interface FillShadowInput extends ReprocessStepInput {
  huntsPerChunk: number;
  /** Return after about this long, so the workflow sees progress and history stays small. */
  timeBudgetMs: number;
}

export interface CatchUpInput extends ReprocessStepInput {
  /** At most this many seq values per round (one transaction). */
  maxEventsPerRound: number;
  /** Done once a complete round merged at most this many: the swap merges the rest under the fence. */
  smallRound: number;
  /** Give up shrinking after this many rounds (ingest outpacing the merge). */
  maxRounds: number;
}

/**
 * `complete`: the last round merged everything stored when it began, so what the swap merges
 * under the fence is what came in during one round. Not complete, the rest is unbounded.
 */
export type CatchUpSummary = Pick<CatchUpResult, 'events' | 'coveredSeq' | 'complete'> & { rounds: number };
export type CatchUpLimits = Pick<CatchUpInput, 'maxEventsPerRound' | 'smallRound' | 'maxRounds'>;
export type { FillProgress, PrepareResult, SwapResult };

const KEEPALIVE_MS = 10_000;
/** swapOutcome waits this long for a swap in flight (the job's row) per attempt, below its 30 s start-to-close. */
const SWAP_OUTCOME_LOCK_TIMEOUT_MS = 20_000;

/**
 * The swap's own catch-up, outside the fence, right before it: events stored since the
 * catch-up step (more when the swap is a retry) would otherwise all merge under the fence.
 */
export const PRE_SWAP_CATCH_UP = { maxEventsPerRound: 200_000, smallRound: 5_000, maxRounds: 10 } as const;
/** How soon a swap step that found its catch-up behind ingest runs again (catching up again). */
const CATCH_UP_RETRY_DELAY = '1 second';

/** `preSwapCatchUp`: the swap's own catch-up (tests make it small). */
export function createReprocessActivities(deps: Pick<ActivityDeps, 'pool' | 'logger' | 'config'>, limits: { preSwapCatchUp?: CatchUpLimits } = {}) {
  const preSwapCatchUp = limits.preSwapCatchUp ?? PRE_SWAP_CATCH_UP;
  return {
    async prepareShadow(input: ReprocessStepInput): Promise<PrepareResult> {
      const projection = checkedProjection(input.projection);
      // When the workflow first scheduled this step (the same for every attempt) orders runs:
      // a late retry of an older run's prepare must not take the job over from a newer run.
      const scheduledAt = new Date(Context.current().info.scheduledTimestampMs);
      const result = await heartbeating(null, () => step(input, () => prepareShadow(deps.pool, projection, input.jobId, input.lockTimeoutMs, scheduledAt)));
      deps.logger.info({ job: input.jobId, projection, ...result }, 'reprocess: shadows prepared');
      return result;
    },

    /** Fills chunks until done or the time budget is spent. */
    async fillShadow(input: FillShadowInput): Promise<FillProgress> {
      const projection = checkedProjection(input.projection);
      const deadline = performance.now() + input.timeBudgetMs; // monotonic, as every budget here
      let progress: FillProgress | undefined;
      for (;;) {
        checkCancelled(projection);
        progress = await heartbeating(progress, () =>
          step(input, () =>
            fillShadowChunk(deps.pool, projection, input.jobId, input.huntsPerChunk, deps.config.ingest.commitLanes, Context.current().cancellationSignal).catch((err: unknown) => {
              throw fillFailedForGood(err) ?? err;
            }),
          ),
        );
        if (progress.done || performance.now() >= deadline) return progress;
      }
    },

    /** Merges events stored since the fill, round after round, outside the fence. */
    async catchUpShadow(input: CatchUpInput): Promise<CatchUpSummary> {
      return catchUpRounds(input);
    },

    /** One more catch-up outside the fence, then the swap under it; heartbeats throughout so a dead worker is found quickly. */
    async swapShadow(input: ReprocessStepInput): Promise<SwapResult> {
      const projection = checkedProjection(input.projection);
      try {
        return await catchUpAndSwap(input, projection);
      } catch (err) {
        // A retry of a step whose swap committed (its worker died before reporting) says so,
        // cancelled or not: a job reported cancelled must not have its tables swapped.
        const swapped = err instanceof CancelledFailure ? await swappedJob(deps.pool, projection, input.jobId) : undefined;
        if (swapped) return swapped;
        throw err;
      }
    },

    /**
     * Asked by a job cancelled during its swap step: the swap if it committed (or commits: one
     * in flight is waited for), else null, and the job is marked cancelled so that no attempt
     * still running can swap.
     */
    async swapOutcome(input: ReprocessStepInput): Promise<SwapResult | null> {
      return (await settleCancelledSwap(deps.pool, checkedProjection(input.projection), input.jobId, SWAP_OUTCOME_LOCK_TIMEOUT_MS)) ?? null;
    },
  };

  async function catchUpAndSwap(input: ReprocessStepInput, projection: ProjectionName): Promise<SwapResult> {
    // A retry whose swap committed (its worker died before reporting) reports it before any
    // check: those are for a swap to come, and the operator may since have put back what
    // they removed for it (a view), which would fail the job that swapped.
    const swapped = await step(input, () => swappedJob(deps.pool, projection, input.jobId));
    if (swapped) {
      deps.logger.info({ job: input.jobId, projection, ...swapped }, 'reprocess: the swap had committed already');
      return swapped;
    }
    // Before the catch-up's fences: a swap Postgres will refuse must not hold the hot path back at all.
    await step(input, () => assertLiveTablesReplaceable(deps.pool, projection));
    const caughtUp = await catchUpRounds({ ...input, ...preSwapCatchUp });
    // Ingest outran the rounds: what is left would all merge under the fence, holding the hot
    // path back for as long as it takes (minutes, with a day's backlog). Retried instead,
    // without the fence, until the catch-up gets ahead (HuntJobRetrying says it does not).
    // At once, not after the fence's backoff (up to 2 minutes): ingest would store more
    // meanwhile than the next attempt's rounds merge, and a backlog that the rounds would
    // work off if they ran on would never shrink.
    if (!caughtUp.complete) {
      throw ApplicationFailure.create({
        message: `reprocess ${projection}: events are still stored faster than the catch-up merges them (${caughtUp.events} merged in ${caughtUp.rounds} rounds outside the fence, more left); not swapping, which would merge the rest under the fence and hold the hot path back meanwhile; catching up again`,
        type: 'ReprocessCatchUpBehind',
        nonRetryable: false,
        nextRetryDelay: CATCH_UP_RETRY_DELAY,
      });
    }
    // The last round goes straight on to the swap: a cancellation that came during it stops here.
    checkCancelled(projection);
    const cancelled = Context.current().cancellationSignal;
    const result = await heartbeating(caughtUp, () => step(input, () => swapShadow(deps.pool, projection, input.jobId, input.lockTimeoutMs, cancelled)));
    deps.logger.info({ job: input.jobId, projection, ...result }, 'reprocess: shadows swapped in');
    return result;
  }

  /** Merges events stored since the shadows' cover, round after round, until a round is small. */
  async function catchUpRounds(input: CatchUpInput): Promise<CatchUpSummary> {
    const projection = checkedProjection(input.projection);
    let total: CatchUpSummary = { events: 0, coveredSeq: 0, complete: false, rounds: 0 };
    for (let round = 1; round <= input.maxRounds; round++) {
      checkCancelled(projection);
      const merged = await heartbeating(total, () =>
        step(input, () => catchUpShadow(deps.pool, projection, input.jobId, input.lockTimeoutMs, input.maxEventsPerRound, Context.current().cancellationSignal)),
      );
      total = { events: total.events + merged.events, coveredSeq: merged.coveredSeq, complete: merged.complete, rounds: round };
      if (merged.complete && merged.events <= input.smallRound) break;
    }
    deps.logger.info({ job: input.jobId, projection, ...total }, 'reprocess: caught up outside the fence');
    return total;
  }
}

export type ReprocessActivities = ReturnType<typeof createReprocessActivities>;

// The workflow validates first; this guards direct starts of the activity.
function checkedProjection(name: string): ProjectionName {
  if (!isProjectionName(name)) throw ApplicationFailure.nonRetryable(`reprocess: unknown projection ${JSON.stringify(name)}`, 'InvalidJobInput');
  return name;
}

/**
 * A chunk whose recomputation Postgres refuses for its data, or that runs past the fill's
 * statement limit or the server's temp_file_limit, fails the same way on every retry while the hunts after it wait: the run
 * fails at once, saying what to change (reconcile treats the same failures of the same
 * recompute as failures of the hunt: isHuntFailure). A statement cancelled because the job
 * was cancelled is not one of them.
 */
function fillFailedForGood(err: unknown): Error | undefined {
  if (Context.current().cancellationSignal.aborted) return undefined;
  const message = (err as Error | null)?.message ?? String(err);
  if (isDataError(err)) {
    return new ReprocessBlockedError(
      `Postgres refused the recomputation of a chunk of hunts: ${describeDataError(err)}. The shadow tables copy the live tables' constraints, and one of them refuses what the rules compute, as it would refuse those rows in the live tables: fix or drop it, then start reprocess again`,
    );
  }
  // 57014 is also a cancel by hand (pg_cancel_backend: "due to user request"), which a retry passes.
  if (sqlStateOf(err) === SqlState.queryCanceled && message.includes('statement timeout')) {
    return new ReprocessBlockedError(
      `a chunk of hunts took longer than the fill's statement limit (${FILL_STATEMENT_MS / 60_000} minutes): ${message}. A chunk ends at about ${FILL_EVENTS_PER_CHUNK.toLocaleString('en-US')} events by the hunts' counts in hunts.events_applied, which may be wrong (reprocess repairs them): start reprocess again with a smaller huntsPerChunk; a single hunt that takes that long cannot be reprocessed (its live results stay as the hot path made them)`,
    );
  }
  if (exceededTempFileLimit(err)) {
    return new ReprocessBlockedError(
      `a chunk of hunts needed more temporary file space than the server's temp_file_limit allows: ${message}. Raise temp_file_limit, or start reprocess again with a smaller huntsPerChunk; a single hunt that needs more cannot be reprocessed under this limit (its live results stay as the hot path made them)`,
    );
  }
  return undefined;
}

function checkCancelled(projection: string): void {
  if (Context.current().cancellationSignal.aborted) throw new CancelledFailure(`reprocess ${projection}: cancelled`);
}

/** Heartbeats the last progress every few seconds while `run` works (one chunk can take long). */
async function heartbeating<T>(details: unknown, run: () => Promise<T>): Promise<T> {
  const context = Context.current();
  context.heartbeat(details);
  const timer = setInterval(() => context.heartbeat(details), KEEPALIVE_MS);
  try {
    return await run();
  } finally {
    clearInterval(timer);
  }
}

/** Retrying cannot help a superseded run, a step called out of order or a swap Postgres refuses: fail the run. */
async function step<T>(input: Pick<ReprocessStepInput, 'projection' | 'jobId'>, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof ReprocessSupersededError) throw ApplicationFailure.nonRetryable(err.message, 'ReprocessSuperseded');
    if (err instanceof ReprocessStateError) throw ApplicationFailure.nonRetryable(err.message, 'ReprocessState');
    if (err instanceof ReprocessBlockedError) throw ApplicationFailure.nonRetryable(err.message, 'ReprocessBlocked');
    if (err instanceof ReprocessCancelledError) throw new CancelledFailure(err.message);
    // A table of the job dropped under it (an operator clearing "leftover" shadow tables):
    // every retry would fail the same way; a new run makes them again.
    if (sqlStateOf(err) === SqlState.undefinedTable) {
      throw ApplicationFailure.nonRetryable(
        `reprocess ${input.projection} (job ${input.jobId}): ${(err as Error).message}: a table this run works on was dropped while it ran; start reprocess again`,
        'ReprocessState',
      );
    }
    throw new Error(`reprocess ${input.projection} (job ${input.jobId}): ${(err as Error).message}`, { cause: err });
  }
}
