import { proxyActivities, upsertMemo, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../src/worker/activities';
import type { CheckReport } from '../src/store/correctness/data-quality';
import { HUNT_JOB_KIND } from '../src/temporal/search-attributes';
import { asObject, badInput, rejectUnknownFields } from './input';

// The activity beats every few seconds while a check's statement runs (each bounded to 30
// minutes inside the 2 hours), so a minute without one means a dead worker; a retry resumes
// after the checks its heartbeat says are done. It retries an outage for as long as it lasts,
// and fails the run at the fifth other failure in a row (FAULTS_IN_A_ROW).
const { runDataQualityChecks } = proxyActivities<Activities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute' },
});

/** Web UI input: `{}` (report only) or `{ "repair": true }`. */
export interface DataQualityInput {
  repair?: boolean;
}

/**
 * `dataQuality`: named checks (duplicate semantic events, orphan projection rows, score
 * drift, future and very late events, quarantine backlog, rollup windows that disagree with
 * raw events), each with a severity, a finding count and samples, stored per run in
 * dq_reports; with `repair: true` it fixes what can be fixed and records what it changed.
 */
export async function dataQuality(input: DataQualityInput = {}): Promise<{ runId: string; repair: boolean; checks: CheckReport[] }> {
  const fields = asObject('dataQuality', input);
  rejectUnknownFields('dataQuality', fields, ['repair']);
  if (fields.repair !== undefined && typeof fields.repair !== 'boolean') throw badInput('dataQuality', 'repair must be true or false');
  const repair = fields.repair === true;
  upsertSearchAttributes([{ key: HUNT_JOB_KIND, value: 'dataQuality' }]);
  upsertMemo({ repair });
  const runId = workflowInfo().workflowId;
  return { runId, repair, checks: await runDataQualityChecks({ runId, repair }) };
}
