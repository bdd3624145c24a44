/**
 * From what a job says about itself (its `progress` query, its activity's heartbeat) to one
 * progress snapshot for the terminal. Pure: src/cli/job-watch.ts asks Temporal and Postgres.
 */
import type { ReconcileCheckpoint, ReconcileSummary } from '../correctness/reconcile-job';
import type { BackfillProgress } from '../../workflows/backfill';
import type { ReconcileProgress } from '../../workflows/reconcile';
import type { ReprocessProgress } from '../../workflows/reprocess';
import type { ImportCounts } from '../batch/backfill/counts';
import type { ProgressSnapshot } from './progress';
import { toDetailText } from '../events/detail-text';
import { scrubSecrets } from '../redact';

export interface JobObservation {
  workflowType: string;
  /** The `progress` query's answer; undefined for jobs without one (or not started yet). */
  query?: unknown;
  /** The running activity's last heartbeat details (reconcile's checkpoint). */
  heartbeat?: unknown;
  /** Hunts a reconcile run has committed, counted in Postgres (fresher than its heartbeat). */
  reconciledHunts?: number;
  elapsedSeconds?: number;
  /**
   * Why the progress query got no answer: no worker answered it in time, or it failed.
   * Undefined when a worker answered that the job has no such query (yet).
   */
  unanswered?: string;
  /** A step of the job tried again, and how its last try ended: shown before anything else. */
  retrying?: RetryingStep;
  /** The job's result, once it has ended. */
  result?: unknown;
}

export interface RetryingStep {
  activityType: string;
  /** The try now waiting to start (2 or more). */
  attempt: number;
  lastFailure: string;
}

/** How much of a step's last failure a progress line shows. */
const FAILURE_CHARS = 160;

/**
 * What a line says of a step tried again: a bar stuck at 0% said nothing of a step failing on
 * every try (a topic the worker's user may not read, Postgres refusing a setting).
 */
export function retryingText(step: RetryingStep): string {
  // Printed on the terminal as it is drawn (the progress printer writes past the console's
  // scrubbing): control characters escaped (a \r or an escape sequence in a message would
  // redraw the screen), secrets hidden.
  const text = scrubSecrets(toDetailText(step.lastFailure));
  const failure = text.length > FAILURE_CHARS ? `${text.slice(0, FAILURE_CHARS)}…` : text;
  return `step ${step.activityType} on try ${step.attempt}, the last failed: ${failure}`;
}

export function snapshotOf(o: JobObservation): ProgressSnapshot {
  const snapshot = figuresOf(o);
  // A job whose worker is gone says that first: its steps time out and wait for a worker. Any
  // job type: only a worker can answer, even that the job has no progress query (job-watch.ts
  // leaves that answer out), so a dataQuality or rollupFlush run showed "running" for ever.
  if (o.query === undefined && o.unanswered) return { ...snapshot, detail: o.unanswered };
  return o.retrying && o.result === undefined ? { ...snapshot, detail: retryingText(o.retrying) } : snapshot;
}

function figuresOf(o: JobObservation): ProgressSnapshot {
  const base = { job: o.workflowType, elapsedSeconds: o.elapsedSeconds };
  switch (o.workflowType) {
    case 'backfill':
      return o.query ? { ...base, ...backfillFigures(o.query as BackfillProgress) } : { ...base, done: 0 };
    case 'reprocess':
      return o.query ? { ...base, ...reprocessFigures(o.query as ReprocessProgress) } : { ...base, done: 0 };
    case 'reconcile':
      return {
        ...base,
        ...reconcileFigures(o.query as ReconcileProgress | undefined, (o.result as ReconcileCheckpoint['summary'] | undefined) ?? (o.heartbeat as ReconcileCheckpoint | undefined)?.summary, o),
      };
    default:
      return { ...base, done: 0, phase: 'running' };
  }
}

type Figures = Omit<ProgressSnapshot, 'job' | 'elapsedSeconds'>;

/** File: bytes of the file. Kafka: records of the range. The job's rate is records/s since it started. */
function backfillFigures(p: BackfillProgress): Figures {
  const unit = p.cursor?.file ? 'bytes' : 'records';
  const left = Math.max(0, p.total - p.done);
  // Bytes per second from records per second and the bytes a record has taken so far.
  const perSecondInUnit = unit === 'records' ? p.rate : p.counts.records > 0 ? (p.rate * p.done) / p.counts.records : 0;
  return {
    phase: p.dryRun ? `${p.state}, dry run` : p.state,
    done: p.done,
    total: p.total,
    unit,
    rate: { perSecond: p.rate, unit: 'records/s' },
    etaSeconds: p.state === 'running' && perSecondInUnit > 0 ? left / perSecondInUnit : undefined,
    detail: importCountsText(p.counts),
  };
}

export function importCountsText(c: ImportCounts): string {
  const rejected = Object.entries(c.rejectedByReason)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
  return [
    `inserted ${c.inserted}`,
    `duplicates ${c.duplicates}`,
    `rejected ${c.rejected}${rejected ? ` (${rejected})` : ''}`,
    ...(c.filteredOut > 0 ? [`other hunts ${c.filteredOut}`] : []),
    ...((c.outsideRange ?? 0) > 0 ? [`outside the time range ${c.outsideRange}`] : []),
    ...((c.deletedBeforeRead ?? 0) > 0 ? [`LOST: deleted from Kafka before they were read ${c.deletedBeforeRead}`] : []),
  ].join(', ');
}

/** The fill moves hunt by hunt; catching up and swapping come after every hunt is done. */
function reprocessFigures(p: ReprocessProgress): Figures {
  const filled = p.phase !== 'preparing' && p.phase !== 'filling';
  return {
    phase: p.phase,
    done: filled ? p.huntsTotal : p.huntsDone,
    total: p.phase === 'preparing' ? undefined : p.huntsTotal,
    unit: 'hunts',
    detail: p.startedSeq === null ? undefined : `events up to seq ${p.startedSeq}`,
  };
}

/**
 * Total from the activity's heartbeat (it sends one as soon as it knows its hunts), the
 * hunts asked for, or the result; done from Postgres when the CLI can read it, else the
 * heartbeat.
 */
function reconcileFigures(p: ReconcileProgress | undefined, summary: ReconcileSummary | undefined, o: JobObservation): Figures {
  const finished = o.result !== undefined;
  const huntsDone = (o.heartbeat as ReconcileCheckpoint | undefined)?.huntsDone;
  // A heartbeat sent before the run opened its scope says 0 hunts: not known yet (it showed
  // 100% of 0 hunts while a run chose its range); it knows them once it counts hunts done.
  const total = (finished || huntsDone !== undefined ? summary?.hunts : undefined) ?? (p?.huntIds ? new Set(p.huntIds).size : undefined);
  const done = finished ? (total ?? 0) : Math.max(o.reconciledHunts ?? 0, huntsDone ?? 0);
  return {
    phase: finished ? 'done' : (p?.phase ?? 'running'),
    done: total === undefined ? done : Math.min(done, total),
    total,
    unit: 'hunts',
    detail: [
      p ? (p.repair ? 'repair' : 'no repair') : undefined,
      // An older worker's summary has no creditsDrifted.
      summary ? `players checked ${summary.playersChecked}, drifted ${summary.playersDrifted}, treasures changed ${summary.treasuresChanged}${summary.creditsDrifted === undefined ? '' : `, credits drifted ${summary.creditsDrifted}`}` : undefined,
      summary?.huntsFailed ? `${summary.huntsFailed} hunt(s) failed, passed and tried again by later runs (reconcile_failures; first: ${summary.failed[0]?.huntId})` : undefined,
      summary?.unknownHunts?.length ? `UNKNOWN (no event, no live row; a mistyped id?): ${summary.unknownHunts.join(', ')}` : undefined,
    ]
      .filter(Boolean)
      .join('; ') || undefined,
  };
}
