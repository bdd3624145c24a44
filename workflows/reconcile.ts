import { defineQuery, patched, proxyActivities, setHandler, upsertMemo, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../src/worker/activities';
import type { ReconcileSummary } from '../src/correctness/reconcile-job';
import { HUNT_ID, HUNT_JOB_KIND } from '../src/temporal/search-attributes';
import { HUNTS_PER_TRANSACTION, ID_PATTERN, MAX_RECONCILE_HUNT_IDS } from '../src/constants';
import { asObject, badInput, shown, optionalInt, rejectUnknownFields } from './input';

const { reconcileHunts } = proxyActivities<Activities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '60 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

/**
 * Web UI input: `{}` reconciles every hunt with events since the last run; or
 * `{ "huntIds": ["hunt-1"], "repair": false }` checks given hunts without repairing.
 */
export interface ReconcileInput {
  huntIds?: string[];
  /** Default true: write the final results into the live projections. */
  repair?: boolean;
  huntsPerTransaction?: number;
  /** With `{}`: leave events stored in the last settleMs for the next run (default 2000). */
  settleMs?: number;
}

/**
 * What the workflow knows while its one activity runs. How far the activity is, it tells
 * by heartbeat (`huntsTotal`, `huntsDone`) and by the reconcile_runs rows it commits under
 * `runId`; `hunt reconcile --wait` and `hunt jobs` read those.
 */
export interface ReconcileProgress {
  phase: 'reconciling' | 'done';
  /** The run id the activity records drift and reconcile_runs rows under. */
  runId: string;
  repair: boolean;
  /** The hunts asked for, or null for every hunt with events since the last run. */
  huntIds: string[] | null;
}

export const progressQuery = defineQuery<ReconcileProgress>('progress');

/**
 * `reconcile`: recomputes hunts' final results from the raw event store, diffs them against
 * the live projections, records the drift (reconcile_runs, reconcile_drift) and repairs the
 * live rows under the per-hunt fence, so no concurrent hot-path increment is lost.
 */
export async function reconcile(input: ReconcileInput = {}): Promise<ReconcileSummary> {
  // Checks added after jobs had started: patched(), first and always, so a run started before
  // them replays as it was made.
  const limited = patched('reconcile-input-limits');
  const fields = asObject('reconcile', input);
  rejectUnknownFields('reconcile', fields, ['huntIds', 'repair', 'huntsPerTransaction', 'settleMs']);
  const huntIds = fields.huntIds as unknown;
  // An empty list would reconcile nothing and end green, the operator's mistake unsaid.
  if (huntIds !== undefined && (!Array.isArray(huntIds) || huntIds.length === 0 || huntIds.some((h) => typeof h !== 'string' || !ID_PATTERN.test(h)))) {
    throw badInput('reconcile', `huntIds must be a non-empty list of hunt ids ([A-Za-z0-9_.-], 1-64 chars), or left out for every hunt; got ${shown(huntIds)}`);
  }
  if (limited && Array.isArray(huntIds) && huntIds.length > MAX_RECONCILE_HUNT_IDS) {
    // Copied into the memo, the activity's input and the progress query: a list of megabytes
    // broke Temporal's size limits with a message that did not say so.
    throw badInput('reconcile', `huntIds lists ${huntIds.length} hunts; at most ${MAX_RECONCILE_HUNT_IDS} (leave it out for every hunt with events since the last run, or run several jobs)`);
  }
  if (limited && huntIds !== undefined && fields.settleMs !== undefined) {
    throw badInput('reconcile', 'settleMs applies to {} (every hunt with events since the last run), not to given huntIds: leave one of them out');
  }
  if (fields.repair !== undefined && typeof fields.repair !== 'boolean') throw badInput('reconcile', 'repair must be true or false');
  const repair = fields.repair !== false;
  const hunts = huntIds as string[] | undefined;
  upsertSearchAttributes([
    { key: HUNT_JOB_KIND, value: 'reconcile' },
    ...(hunts?.length === 1 ? [{ key: HUNT_ID, value: hunts[0] as string }] : []),
  ]);
  upsertMemo({ scope: hunts ? hunts.join(',') : 'hunts with events since the last run', repair });
  const runId = `${workflowInfo().workflowId}/${workflowInfo().runId}`;
  // A query handler adds no command to the history: saved histories replay unchanged.
  const progress: ReconcileProgress = { phase: 'reconciling', runId, repair, huntIds: hunts ?? null };
  setHandler(progressQuery, () => progress);
  const summary = await reconcileHunts({
    runId,
    huntIds: hunts,
    repair,
    huntsPerTransaction: optionalInt('reconcile', fields, 'huntsPerTransaction', 1, 1000, HUNTS_PER_TRANSACTION),
    settleMs: optionalInt('reconcile', fields, 'settleMs', 0, 600_000, 2000),
  });
  progress.phase = 'done';
  return summary;
}
