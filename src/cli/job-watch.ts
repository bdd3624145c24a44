/**
 * Watching batch jobs from the terminal: what a job says about itself (its `progress`
 * query; for reconcile also its activity's heartbeat and its rows in Postgres), followed
 * until it ends (`--wait`) or looked at once (`hunt jobs`). Loaded only when a job command
 * runs: it pulls in the Temporal SDK.
 */
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { isGrpcServiceError, isRetryableError, type WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import type pg from 'pg';
import type { ReconcileProgress } from '../../workflows/reconcile';
import { toDetailText } from '../events/detail-text';
import { scrubSecrets } from '../redact';
import { countReconciledHunts } from '../store/correctness/reconcile';
import { snapshotOf, type JobObservation, type RetryingStep } from './job-progress';
import { createProgressPrinter, RateTracker, type ProgressOutput, type ProgressSnapshot } from './progress';

export interface ObserveOptions {
  /** For reconcile's progress (rows committed so far); without it the heartbeat's count. */
  pool?: pg.Pool;
  startedAt?: Date;
  /** The job's result, once it has ended: its final figures. */
  result?: unknown;
}

/** One look at a job. Never throws for a job that cannot answer yet: it shows less. */
export async function observeJob(handle: WorkflowHandle, workflowType: string, options: ObserveOptions = {}): Promise<ProgressSnapshot> {
  const observation: JobObservation = {
    workflowType,
    elapsedSeconds: options.startedAt ? (Date.now() - options.startedAt.getTime()) / 1000 : undefined,
    result: options.result,
  };
  // A job whose worker is gone cannot answer; do not wait for it longer than this.
  const askedAt = Date.now();
  // Asked together: a slow server costs one deadline, not two.
  const [query, pending] = await Promise.all([
    handle.client.withDeadline(askedAt + QUERY_DEADLINE_MS, () => handle.query('progress')).catch((err: unknown) => {
      observation.unanswered = describeQueryFailure(err, Date.now() - askedAt >= QUERY_DEADLINE_MS);
      return undefined;
    }),
    handle.client
      .withDeadline(askedAt + QUERY_DEADLINE_MS, () => handle.describe())
      .then((description) => description.raw.pendingActivities ?? [])
      .catch((): PendingActivity[] => []),
  ]);
  observation.query = query;
  observation.retrying = retryingStep(pending);
  if (workflowType === 'reconcile') {
    observation.heartbeat = heartbeatOf(pending, 'reconcileHunts');
    const runId = (observation.query as ReconcileProgress | undefined)?.runId;
    if (options.pool && runId) observation.reconciledHunts = await countReconciledHunts(options.pool, runId).catch(() => undefined);
  }
  return snapshotOf(observation);
}

const QUERY_DEADLINE_MS = 5000;

/** Why the job gave no progress, or nothing when that is normal (it is starting). */
function describeQueryFailure(err: unknown, timedOut: boolean): string | undefined {
  if (timedOut) return 'no answer to the progress query: is a worker polling the task queue?';
  const message = [(err as Error).message, ((err as { cause?: Error }).cause)?.message].filter(Boolean).join(': ');
  // The job registers its query once it has looked at its input (backfill: the source's size).
  if (/did not register a handler for progress/.test(message)) return undefined;
  // Drawn on the terminal past the console's scrubbing, as retryingText's failure is.
  return `no progress: ${scrubSecrets(toDetailText(message))}`;
}

type PendingActivity = temporal.api.workflow.v1.IPendingActivityInfo;

/** The last heartbeat details of the job's running activity of that type, decoded. */
function heartbeatOf(pending: readonly PendingActivity[], activityType: string): unknown {
  const payload = pending.find((a) => a.activityType?.name === activityType)?.heartbeatDetails?.payloads?.[0];
  return payload ? defaultPayloadConverter.fromPayload(payload as Payload) : undefined;
}

/** PendingActivityState.PENDING_ACTIVITY_STATE_STARTED (the proto's enum, which is a type here). */
const STARTED = 2;

/**
 * The pending step tried most often, if any failed before and now waits for its next try: one
 * that has started again is getting on, and its counts say more.
 */
export function retryingStep(pending: readonly PendingActivity[]): RetryingStep | undefined {
  const waiting = pending.filter((a) => (a.attempt ?? 1) > 1 && a.lastFailure && a.state !== STARTED);
  const step = waiting.sort((a, b) => (b.attempt ?? 1) - (a.attempt ?? 1))[0];
  if (!step) return undefined;
  return { activityType: step.activityType?.name ?? 'unknown', attempt: step.attempt ?? 2, lastFailure: step.lastFailure?.message ?? '' };
}

export interface FollowOptions extends ObserveOptions {
  out?: ProgressOutput;
  /** How often to ask the job (the bar is redrawn as often). */
  pollMs?: number;
  /** How long to wait before asking for the result again after losing Temporal. */
  reconnectMs?: number;
  /** Told once when the connection to Temporal is lost (default: a line on stderr). */
  onLost?: (err: unknown) => void;
}

/** gRPC's DEADLINE_EXCEEDED: Temporal not answering in time, not the job's end. */
const DEADLINE_EXCEEDED = 4;

/**
 * The gRPC error behind a failure to reach Temporal, as the SDK retries such errors itself
 * (UNAVAILABLE, RESOURCE_EXHAUSTED, a proxy's RST_STREAM...) and then gives up; else undefined.
 */
function connectionLoss(err: unknown): { details: string } | undefined {
  for (const candidate of [err, (err as { cause?: unknown } | null)?.cause]) {
    if (isGrpcServiceError(candidate) && (isRetryableError(candidate) || candidate.code === DEADLINE_EXCEEDED)) return candidate;
  }
  return undefined;
}

/**
 * The job's result, asked again while Temporal cannot be reached: the SDK gives up on it after
 * about 20 s of UNAVAILABLE, and `--wait` then reported a job running on as failed (exit 1) on
 * a frontend restart or a network cut. Asked again of the job's latest run: the handle starts
 * from its first, which Temporal may have deleted since (retention) when it continued as new.
 */
export async function jobResult(handle: WorkflowHandle, options: Pick<FollowOptions, 'reconnectMs' | 'onLost'> = {}): Promise<unknown> {
  let told = false;
  for (let asking = handle; ; asking = handle.client.getHandle(handle.workflowId)) {
    try {
      return await asking.result();
    } catch (err) {
      const lost = connectionLoss(err);
      if (!lost) throw err;
      if (!told) (options.onLost ?? (() => console.error(`lost contact with Temporal (${lost.details}); the job runs on, still following it`)))(err);
      told = true;
      await new Promise((resolve) => setTimeout(resolve, options.reconnectMs ?? 5000));
    }
  }
}

/**
 * Shows the job's progress until it ends: a bar with rate and ETA on a terminal, a plain
 * line every few seconds otherwise. Returns the job's result (or throws its failure).
 */
export async function followJob(handle: WorkflowHandle, workflowType: string, options: FollowOptions = {}): Promise<unknown> {
  const out = options.out ?? process.stdout;
  const printer = createProgressPrinter(out);
  const tracker = new RateTracker();
  const result = jobResult(handle, options);
  let finished = false;
  void result.finally(() => (finished = true)).catch(() => undefined);
  const startedAt = options.startedAt ?? new Date();
  try {
    while (!finished) {
      const snapshot = await observeJob(handle, workflowType, { ...options, startedAt });
      tracker.add(Date.now(), snapshot.done);
      printer.update(withRecentPace(snapshot, tracker));
      await Promise.race([result.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1000))]);
    }
    // The last word: the finished job's own figures (a failed job has none to add).
    const outcome = await result.catch(() => undefined);
    if (outcome !== undefined) printer.update(await observeJob(handle, workflowType, { ...options, startedAt, result: outcome }));
  } finally {
    printer.finish();
  }
  return result;
}

/**
 * The ETA from the recent pace, which follows the job's current speed; the job's own
 * figure (an average since it started) until there is a recent pace. Jobs that report no
 * rate of their own show the recent pace.
 */
function withRecentPace(s: ProgressSnapshot, tracker: RateTracker): ProgressSnapshot {
  const recentEta = tracker.etaSeconds(s.total);
  const perSecond = tracker.perSecond();
  return {
    ...s,
    etaSeconds: recentEta ?? s.etaSeconds,
    rate: s.rate ?? (perSecond !== undefined && s.unit && s.total !== undefined ? { perSecond, unit: `${s.unit}/s` } : undefined),
  };
}
