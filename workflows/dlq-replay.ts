import { patched, proxyActivities, upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities } from '../src/worker/activities';
import type { ReplayTotals } from '../src/correctness/dlq-replay-job';
import { HUNT_JOB_KIND } from '../src/temporal/search-attributes';
import { REJECT_REASONS } from '../src/constants';
import { asObject, badInput, shown, ISO_TIME_STRICT, ISO_TIME_UTC_YEARS, optionalInt, optionalIsoTime, rejectUnknownFields } from './input';

const { replayQuarantined } = proxyActivities<Activities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

const REASONS: readonly string[] = REJECT_REASONS;

/**
 * Web UI input: `{}` (everything quarantined and not yet replayed), or e.g.
 * `{ "reasons": ["future_timestamp"], "from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z", "dryRun": true }`.
 */
export interface DlqReplayInput {
  reasons?: string[];
  from?: string;
  to?: string;
  dryRun?: boolean;
  batchSize?: number;
}

/**
 * `dlqReplay`: re-validates quarantined records (after a fix, or once a future timestamp's
 * time has come) and ingests the ones now valid through the hot path's applyEvents, marking
 * them replayed. Running it twice ingests nothing twice.
 */
export async function dlqReplay(input: DlqReplayInput = {}): Promise<ReplayTotals & { dryRun: boolean }> {
  // A check added to the input after a job started must not fail it on replay (a new worker
  // replays a running job's history): patched(), called first and always.
  // The strict time check, the non-empty reasons and from before to came after jobs had
  // started: skipped for a run begun before them (ISO_TIME_STRICT), as it ran then.
  const strict = patched(ISO_TIME_STRICT);
  const checks = { utcYears: patched(ISO_TIME_UTC_YEARS), strict };
  const fields = asObject('dlqReplay', input);
  rejectUnknownFields('dlqReplay', fields, ['reasons', 'from', 'to', 'dryRun', 'batchSize']);
  const reasons = fields.reasons as unknown;
  // An empty list would replay nothing and end green, the operator's mistake unsaid.
  if (reasons !== undefined && (!Array.isArray(reasons) || (strict && reasons.length === 0) || reasons.some((r) => !REASONS.includes(r as string)))) {
    throw badInput('dlqReplay', `reasons must be a non-empty list drawn from ${REASONS.join(', ')}, or left out for every reason; got ${shown(reasons)}`);
  }
  const from = optionalIsoTime('dlqReplay', fields, 'from', checks);
  const to = optionalIsoTime('dlqReplay', fields, 'to', checks);
  if (strict && from !== undefined && to !== undefined && from >= to) throw badInput('dlqReplay', `from (${from}) must be before to (${to})`);
  if (fields.dryRun !== undefined && typeof fields.dryRun !== 'boolean') throw badInput('dlqReplay', 'dryRun must be true or false');
  const dryRun = fields.dryRun === true;
  upsertSearchAttributes([{ key: HUNT_JOB_KIND, value: 'dlqReplay' }]);
  upsertMemo({ reasons: (reasons as string[] | undefined)?.join(',') ?? '(all)', from: from ?? '-', to: to ?? '-', dryRun });
  const totals = await replayQuarantined({
    reasons: reasons as string[] | undefined,
    from,
    to,
    dryRun,
    batchSize: optionalInt('dlqReplay', fields, 'batchSize', 1, 10_000, 1000),
  });
  return { ...totals, dryRun };
}
