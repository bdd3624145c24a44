/**
 * How many times the steps of running jobs have been tried, and what ended their last try.
 *
 * The worker's own metric of failed steps (temporal_activity_execution_failed, which
 * HuntJobRetrying reads) counts only attempts that ended on a worker with an error. An attempt
 * that ends by a timeout ends on the server: a step stuck in a statement or on a frozen
 * worker, timed out again and again, counted nothing, and a job could retry it for ever with
 * no alert. Temporal knows each pending step's attempt and last failure; every worker asks it
 * every minute, exports the highest count per kind of step as `hunt_job_step_attempts`
 * (HuntJobStepTimingOut), and logs a step whose tries keep timing out.
 *
 * Only steps with no sign of life count: a try waiting to start (its retry's backoff, or no
 * free worker), or one started that has not heartbeat since it started, or for
 * SIGN_OF_LIFE_MS. A step whose earlier tries failed but whose current try heartbeats is
 * getting on, and counts 0. (Every long step of these jobs heartbeats every few seconds.) A
 * step whose last try outlasted its start-to-close time always counts: its heartbeats come
 * from a timer, and say nothing of progress. So does one whose worker went silent under it
 * (a heartbeat timeout) on the last of LOGGED_FROM_ENDED or more tries, while its current
 * try is younger than CRASH_LOOP_WINDOW_MS: a worker that dies under a step again and again
 * (out of memory, a crash) heartbeats until it dies, and is restarted, so the step would show
 * life between its deaths and never count. A try that outlives the window is getting on.
 */
import type { Client } from '@temporalio/client';
import type { MetricGauge } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { Logger } from '../log';

/** How the last try of a step ended. */
export type EndedBy = 'timeout' | 'failure';

export interface StepAttempts {
  workflowType: string;
  workflowId: string;
  activityType: string;
  activityId: string;
  /** Tries ended so far (the pending try not counted). */
  ended: number;
  endedBy: EndedBy;
  /** The last try's failure, as Temporal says it (e.g. "activity Heartbeat timeout"). */
  lastFailure: string;
}

export interface PendingSteps {
  /** The pending steps tried before whose current try shows no sign of life. */
  steps: StepAttempts[];
  /** Running jobs left out past MAX_JOBS_PER_PASS. */
  jobsLeftOut: number;
  /** Jobs Temporal would not describe (ended meanwhile, or not allowed). */
  undescribed: number;
}

/** The gauge's name on the worker's metrics port. */
export const STEP_ATTEMPTS_METRIC = 'hunt_job_step_attempts';
/**
 * Unix time (s) of the last pass that looked at every running job's steps. A pass that fails
 * sets hunt_job_step_attempts to 0 (a job ended meanwhile must not keep its alert firing), so
 * a monitor that can never ask (a visibility store without that query, rights to list
 * workflows missing, more running jobs than a pass takes) silenced HuntJobStepTimingOut with
 * nothing an alert could see: HuntJobStepsUnwatched reads this.
 */
export const STEP_ATTEMPTS_PASS_METRIC = 'hunt_job_step_attempts_pass_seconds';

/** Running jobs looked at per pass: a bound on one pass's calls, far above what runs at once. */
export const MAX_JOBS_PER_PASS = 500;
/** Tries ended, the last by a timeout, from which a step is logged. */
export const LOGGED_FROM_ENDED = 3;
/** A started try that neither started nor heartbeat for this long shows no sign of life: twice the longest heartbeat timeout of the jobs (60 s). */
export const SIGN_OF_LIFE_MS = 2 * 60_000;
/** How long the try after a worker lost under the step counts, heartbeats or not, once LOGGED_FROM_ENDED tries have ended. */
export const CRASH_LOOP_WINDOW_MS = 10 * 60_000;

/**
 * The pending steps of the running jobs of `taskQueue` that have been tried before and whose
 * current try shows no sign of life. `stopped` ends the pass early.
 */
export async function pendingStepAttempts(client: Client, taskQueue: string, options: { maxJobs?: number; nowMs?: number; stopped?: () => boolean } = {}): Promise<PendingSteps> {
  const { maxJobs = MAX_JOBS_PER_PASS, nowMs = Date.now(), stopped = () => false } = options;
  const result: PendingSteps = { steps: [], jobsLeftOut: 0, undescribed: 0 };
  let jobs = 0;
  for await (const job of client.workflow.list({ query: `TaskQueue = ${JSON.stringify(taskQueue)} AND ExecutionStatus = "Running"` })) {
    if (stopped()) break;
    if (++jobs > maxJobs) {
      result.jobsLeftOut++;
      continue;
    }
    const description = await client.workflow.getHandle(job.workflowId, job.runId).describe().catch(() => undefined);
    if (!description) {
      result.undescribed++;
      continue;
    }
    for (const pending of description.raw.pendingActivities ?? []) {
      if (!counts(pending, nowMs)) continue;
      const attempt = pending.attempt ?? 1;
      result.steps.push({
        workflowType: job.type,
        workflowId: job.workflowId,
        activityType: pending.activityType?.name ?? 'unknown',
        activityId: pending.activityId ?? '',
        ended: attempt - 1,
        endedBy: pending.lastFailure ? endedBy(pending.lastFailure) : 'failure',
        lastFailure: pending.lastFailure?.message ?? '',
      });
    }
  }
  return result;
}

/**
 * Whether a pending step counts: it was tried before, and its current try shows no sign of
 * life, or its last try outlasted its start-to-close time, or its worker went silent under
 * the last of LOGGED_FROM_ENDED or more tries and the current one is young.
 */
export function counts(pending: temporal.api.workflow.v1.IPendingActivityInfo, nowMs: number): boolean {
  const ended = (pending.attempt ?? 1) - 1;
  if (ended < 1 || !pending.lastFailure) return false;
  const timeout = timeoutIn(pending.lastFailure)?.timeoutType;
  if (timeout === TIMEOUT_TYPE_START_TO_CLOSE) return true;
  if (timeout === TIMEOUT_TYPE_HEARTBEAT && ended >= LOGGED_FROM_ENDED && nowMs - msOf(pending.lastStartedTime) < CRASH_LOOP_WINDOW_MS) return true;
  return !showsLife(pending, nowMs);
}

/**
 * A try started and heartbeat since (a heartbeat time can be an earlier try's), within
 * SIGN_OF_LIFE_MS. Not asked of a step whose last try outlasted its start-to-close time: the
 * long steps heartbeat from a timer, not from progress, so one that runs past its time on
 * every try (a chunk too big for it) heartbeats all along.
 */
export function showsLife(pending: temporal.api.workflow.v1.IPendingActivityInfo, nowMs: number): boolean {
  if (pending.state !== PENDING_ACTIVITY_STATE_STARTED) return false;
  const beat = msOf(pending.lastHeartbeatTime);
  return beat >= msOf(pending.lastStartedTime) && nowMs - beat < SIGN_OF_LIFE_MS;
}

/** PendingActivityState.PENDING_ACTIVITY_STATE_STARTED (the proto's enum, which is a type here). */
const PENDING_ACTIVITY_STATE_STARTED = 2;

export function msOf(ts: { seconds?: unknown; nanos?: number | null } | null | undefined): number {
  if (!ts) return 0;
  return Number(String(ts.seconds ?? 0)) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6);
}

/** TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE and TIMEOUT_TYPE_HEARTBEAT (the proto's enum, which is a type here). */
const TIMEOUT_TYPE_START_TO_CLOSE = 1;
const TIMEOUT_TYPE_HEARTBEAT = 4;

function endedBy(failure: temporal.api.failure.v1.IFailure): EndedBy {
  return timeoutIn(failure) ? 'timeout' : 'failure';
}

/** The timeout anywhere in the failure's chain (an activity's timeout can come wrapped), if any. */
function timeoutIn(failure: temporal.api.failure.v1.IFailure): temporal.api.failure.v1.ITimeoutFailureInfo | undefined {
  for (let f: temporal.api.failure.v1.IFailure | null | undefined = failure; f; f = f.cause) {
    if (f.timeoutFailureInfo) return f.timeoutFailureInfo;
  }
  return undefined;
}

export interface StepAttemptsMonitor {
  /** No pass starts after this; resolves once a running one has ended. */
  stop(): Promise<void>;
}

export interface StepAttemptsMonitorOptions {
  connect: () => Promise<{ client: Client; close: () => Promise<void> }>;
  taskQueue: string;
  gauge: MetricGauge;
  /** Set to the unix time (s) of each pass that looked at every running job (STEP_ATTEMPTS_PASS_METRIC). */
  passGauge?: MetricGauge;
  logger: Logger;
  everyMs?: number;
  firstAfterMs?: number;
  /** Tries ended by a timeout from which a step is logged; LOGGED_FROM_ENDED unless set (tests). */
  logFromEnded?: number;
}

const EVERY_MS = 60_000;
/** Warnings that Temporal could not be asked: at most one in this long (an outage lasts). */
const WARN_EVERY_MS = 10 * 60_000;

/**
 * Sets `gauge` every pass: for each kind of step (workflow type, activity type) and way its
 * last try ended, the most tries ended of any pending step of that kind; 0 for a kind seen
 * before with none now, so an alert clears.
 */
export function startStepAttemptsMonitor(options: StepAttemptsMonitorOptions): StepAttemptsMonitor {
  const { taskQueue, gauge, logger } = options;
  let connection: { client: Client; close: () => Promise<void> } | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  let lastWarnMs = 0;
  const shown = new Set<string>();
  let logged = new Map<string, number>();
  /** Sets each kind's figure, and 0 for a kind shown before and not now, so its alert clears. */
  const show = (highest: Map<string, { tags: Record<string, string>; ended: number }>) => {
    for (const key of shown) if (!highest.has(key)) gauge.set(0, JSON.parse(key) as Record<string, string>);
    shown.clear();
    for (const [key, { tags, ended }] of highest) {
      gauge.set(ended, tags);
      shown.add(key);
    }
  };
  const pass = async () => {
    try {
      connection ??= await options.connect();
      const { steps, jobsLeftOut, undescribed } = await pendingStepAttempts(connection.client, taskQueue, { stopped: () => stopped });
      if (stopped) return;
      if (jobsLeftOut > 0 || undescribed > 0) warnOften({ jobsLeftOut, undescribed, maxJobs: MAX_JOBS_PER_PASS }, 'some running jobs\' steps were not looked at (more running jobs than a pass takes, or Temporal would not describe them): hunt_job_step_attempts does not cover them');
      const highest = new Map<string, { tags: Record<string, string>; ended: number }>();
      for (const step of steps) {
        const tags = { workflow_type: step.workflowType, activity_type: step.activityType, ended_by: step.endedBy };
        const key = JSON.stringify(tags);
        highest.set(key, { tags, ended: Math.max(step.ended, highest.get(key)?.ended ?? 0) });
      }
      show(highest);
      logTimingOut(steps);
      if (jobsLeftOut === 0 && undescribed === 0) options.passGauge?.set(Math.floor(Date.now() / 1000));
    } catch (err) {
      // Not left at what it last was: a job that ended meanwhile would keep its alert firing.
      show(new Map());
      warnOften({ err }, 'could not ask Temporal how often running jobs\' steps were tried (hunt_job_step_attempts reads 0 meanwhile); trying again every minute');
    }
  };
  const warnOften = (fields: Record<string, unknown>, message: string) => {
    if (Date.now() - lastWarnMs < WARN_EVERY_MS) return;
    lastWarnMs = Date.now();
    logger.warn(fields, message);
  };
  /** Once per step and count: a step timed out again and again says nothing else anywhere. */
  const logTimingOut = (steps: StepAttempts[]) => {
    const now = new Map<string, number>();
    for (const step of steps) {
      if (step.endedBy !== 'timeout' || step.ended < (options.logFromEnded ?? LOGGED_FROM_ENDED)) continue;
      const key = `${step.workflowId}/${step.activityId}`;
      now.set(key, step.ended);
      if (logged.get(key) === step.ended) continue;
      logger.warn(
        { workflowType: step.workflowType, workflowId: step.workflowId, activityType: step.activityType, triesEnded: step.ended, lastFailure: step.lastFailure },
        'a job step keeps timing out: its tries end on the server (a step stuck, or a worker frozen or cut off), and the job retries it without end; see HuntJobStepTimingOut in docs/operators.md',
      );
    }
    logged = now;
  };
  const tick = () => {
    if (stopped || running) return;
    running = pass().finally(() => (running = undefined));
  };
  // The start counts as a pass: a monitor that never passes shows from then on.
  options.passGauge?.set(Math.floor(Date.now() / 1000));
  let interval: NodeJS.Timeout | undefined;
  const first = setTimeout(() => {
    tick();
    interval = setInterval(tick, options.everyMs ?? EVERY_MS);
    interval.unref();
  }, options.firstAfterMs ?? EVERY_MS);
  first.unref();
  return {
    async stop() {
      stopped = true;
      clearTimeout(first);
      clearInterval(interval);
      await running;
      await connection?.close().catch(() => undefined);
    },
  };
}
