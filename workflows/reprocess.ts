import { ActivityCancellationType, ActivityFailure, ApplicationFailure, CancellationScope, CancelledFailure, continueAsNew, defineQuery, isCancellation, patched, proxyActivities, setHandler, upsertMemo, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { ReprocessActivities, ReprocessStepInput, SwapResult } from '../src/batch/reprocess-job';
import type { ProjectionName } from '../src/store/batch/reprocess';
import { HUNT_JOB_KIND } from '../src/temporal/search-attributes';
import { asObject, badInput, shown, optionalInt, rejectUnknownFields } from './input';

const JOB = 'reprocess';

// Typed against the store's list, so a projection added there fails to compile here until
// it is described for operators.
const PROJECTION_DESCRIPTIONS: Record<ProjectionName, string> = {
  leaderboard: 'player_scores, clue_credits and treasure_winners, rebuilt together',
};

// Steps that take the fence queue for it at most lockTimeoutMs per attempt, holding the hot
// path back meanwhile, then retry with backoff. A session that keeps the fence taken (its
// name is in the failure) would otherwise cost the hot path lockTimeoutMs every 30 s; at most
// every 2 minutes it costs 4%.
const FENCE_RETRY = { initialInterval: '1 second', maximumInterval: '2 minutes' } as const;

const FENCED_STEP = {
  startToCloseTimeout: '10 minutes',
  // They heartbeat every 10 s, so a killed worker's attempt is retried within 30 s, not
  // after start-to-close: a swap retried late merges everything stored meanwhile under the
  // fence, and a late prepare could find a newer run owning the job.
  heartbeatTimeout: '30 seconds',
  retry: FENCE_RETRY,
} as const;
const { prepareShadow, swapShadow } = proxyActivities<ReprocessActivities>(FENCED_STEP);

// The same, waiting for the step to end when the job is cancelled during it: the swap may be
// past the point where a cancellation can stop it, and then the job must say it swapped. With
// the default (try to cancel, report cancelled at once) a job reported cancelled had swapped.
const { swapShadow: swapShadowReported } = proxyActivities<ReprocessActivities>({
  ...FENCED_STEP,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

// Asks Postgres whether the job's swap committed: a quick read, retried for a while when
// Postgres does not answer (the job then fails saying what to check, see swapOrItsOutcome).
const { swapOutcome } = proxyActivities<ReprocessActivities>({
  startToCloseTimeout: '30 seconds',
  scheduleToCloseTimeout: '10 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

const { fillShadow, catchUpShadow } = proxyActivities<ReprocessActivities>({
  // They heartbeat every 10 s even inside one long chunk, so the heartbeat timeout finds a
  // dead worker; the generous start-to-close only has to outlast the biggest chunk.
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '60 seconds',
  retry: FENCE_RETRY, // catch-up rounds take the fence too
});

/**
 * Web UI input: `{ "projection": "leaderboard" }`, optionally `"huntsPerChunk": 200`, the most hunts
 * a fill chunk takes (it also stops at about FILL_EVENTS_PER_CHUNK events, src/store/batch/reprocess.ts).
 */
export interface ReprocessInput {
  projection: string;
  huntsPerChunk?: number;
}

export interface ReprocessProgress {
  phase: 'preparing' | 'filling' | 'catching-up' | 'swapping' | 'done';
  huntsDone: number;
  huntsTotal: number;
  /** The fill's seq bound (events with seq <= startedSeq); null until prepared. */
  startedSeq: number | null;
}

export interface ReprocessSummary extends SwapResult {
  projection: string;
  huntsTotal: number;
  durationMs: number;
}

export const progressQuery = defineQuery<ReprocessProgress>('progress');

const FILL_TIME_BUDGET_MS = 20_000;
/**
 * Fill calls per run before continue-as-new (about half an hour of filling): each call adds
 * six events to the history, and a fill of days would pass Temporal's history limits. The
 * next run carries the job id, which owns the shadow tables, and the fill goes on where
 * Postgres says it is.
 */
const FILL_CALLS_PER_RUN = 100;

/** What a run continued as new takes over from the one before: its job, and where its fill is. */
export interface ReprocessCarried {
  jobId: string;
  startedAtMs: number;
  /** Absent in runs continued by the first version of continue-as-new, which carried the fields below instead. */
  progress?: ReprocessProgress;
  huntsDone?: number;
  huntsTotal?: number;
  startedSeq?: number | null;
}

const LOCK_TIMEOUT_MS = 5_000;
// Catch-up rounds shrink the work left for the swap, which holds the hot path back.
const CATCH_UP = { maxEventsPerRound: 200_000, smallRound: 5_000, maxRounds: 50 };

/**
 * `reprocess`: rebuilds a projection from the raw event store into shadow tables, catches
 * up with events stored meanwhile, and swaps it in atomically while the hot path keeps
 * ingesting; no event is lost or counted twice across the swap (src/store/batch/reprocess.ts).
 * Idempotent: a rerun rebuilds again to the same final state; a newer run of the same
 * projection takes over (the older one fails as superseded).
 */
export async function reprocess(input: ReprocessInput, carried?: ReprocessCarried): Promise<ReprocessSummary> {
  const { projection, huntsPerChunk } = parseInput(input);
  const started = carried?.startedAtMs ?? Date.now();
  const info = workflowInfo();
  const jobId = carried?.jobId ?? `${info.workflowId}/${info.runId}`;
  upsertSearchAttributes([{ key: HUNT_JOB_KIND, value: JOB }]);
  upsertMemo({ description: `Rebuilds the ${projection} projection (${PROJECTION_DESCRIPTIONS[projection]}) from raw events and swaps it in`, projection });

  const progress: ReprocessProgress = carried ? progressCarried(carried) : { phase: 'preparing', huntsDone: 0, huntsTotal: 0, startedSeq: null };
  setHandler(progressQuery, () => progress);

  const step = { projection, jobId, lockTimeoutMs: LOCK_TIMEOUT_MS };
  if (!carried) {
    const prepared = await prepareShadow(step);
    progress.phase = 'filling';
    progress.huntsTotal = prepared.huntsTotal;
    progress.startedSeq = prepared.startedSeq;
  }
  for (let call = 0; ; call++) {
    // patched(): a run started before this change replays its history as it was made (its
    // fill calls past the 100th), and continues as new from where it goes live.
    if (call >= FILL_CALLS_PER_RUN && patched('reprocess-fill-continue-as-new')) {
      await continueAsNew<typeof reprocess>(input, { jobId, startedAtMs: started, progress });
    }
    const filled = await fillShadow({ ...step, huntsPerChunk, timeBudgetMs: FILL_TIME_BUDGET_MS });
    progress.huntsDone = filled.huntsDone;
    progress.huntsTotal = filled.huntsTotal;
    if (filled.done) break;
  }
  progress.phase = 'catching-up';
  await catchUpShadow({ ...step, ...CATCH_UP });
  progress.phase = 'swapping';
  const swapped = await swapOrItsOutcome(step);
  progress.phase = 'done';
  return { projection, ...swapped, huntsTotal: progress.huntsTotal, durationMs: Date.now() - started };
}

/**
 * The swap step, and when the job is cancelled during it, whether its swap committed anyway.
 * Waiting for a running attempt to end (swapShadowReported) covers a cancellation that meets
 * it, and an attempt that reports; not an attempt whose swap committed and whose worker died
 * before reporting it: with a cancellation pending the step is not retried (it fails, its
 * retry state CANCEL_REQUESTED), and between attempts it ends at once. So a swap step that
 * ends on a cancellation asks Postgres, even though the job is cancelled: a job whose swap
 * committed reports it; one whose swap did not is marked cancelled there (no attempt still
 * running can swap after that) and ends cancelled.
 */
async function swapOrItsOutcome(step: ReprocessStepInput): Promise<SwapResult> {
  // patched(): a run cancelled during its swap on the code before replays as it was made.
  const swap = patched('reprocess-swap-reports-its-outcome') ? swapShadowReported : swapShadow;
  try {
    return await swap(step);
  } catch (err) {
    const endedByCancellation = isCancellation(err) || (err instanceof ActivityFailure && err.retryState === 'CANCEL_REQUESTED');
    if (!endedByCancellation || !patched('reprocess-cancelled-swap-asks-postgres')) throw err;
    let swapped: SwapResult | null;
    try {
      swapped = await CancellationScope.nonCancellable(() => swapOutcome(step));
    } catch (unanswered) {
      throw ApplicationFailure.nonRetryable(
        `reprocess ${step.projection} (job ${step.jobId}) was cancelled during its swap step, and Postgres did not say whether the swap committed: ` +
          `see reprocess_jobs (phase 'swapped' for this job_id means the rebuilt tables are live)`,
        'ReprocessSwapOutcomeUnknown',
        String(unanswered),
      );
    }
    if (swapped) return swapped;
    // The step's own failure (a timeout, a refusal) stays as the cause.
    throw isCancellation(err) ? err : new CancelledFailure(`reprocess ${step.projection} (job ${step.jobId}): cancelled before the swap; the live tables are untouched`, [], err as Error);
  }
}

/** A continued run is filling; one continued by the first version carried its counts loose (the progress query answered `{}`). */
function progressCarried(carried: ReprocessCarried): ReprocessProgress {
  if (carried.progress) return { ...carried.progress };
  return { phase: 'filling', huntsDone: carried.huntsDone ?? 0, huntsTotal: carried.huntsTotal ?? 0, startedSeq: carried.startedSeq ?? null };
}

function parseInput(input: unknown): { projection: ProjectionName; huntsPerChunk: number } {
  const fields = asObject(JOB, input);
  rejectUnknownFields(JOB, fields, ['projection', 'huntsPerChunk']);
  const known = Object.keys(PROJECTION_DESCRIPTIONS);
  const projection = fields.projection;
  if (typeof projection !== 'string' || !Object.hasOwn(PROJECTION_DESCRIPTIONS, projection)) {
    throw badInput(JOB, `projection must be one of ${known.map((p) => JSON.stringify(p)).join(', ')}, got ${shown(projection)}; for example {"projection":"leaderboard"}`);
  }
  return { projection: projection as ProjectionName, huntsPerChunk: optionalInt(JOB, fields, 'huntsPerChunk', 1, 10_000, 200) };
}
