import { proxyActivities, upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities } from '../src/worker/activities';
import type { FlushRollupsResult } from '../src/batch/rollup-job';
import { HUNT_JOB_KIND } from '../src/temporal/search-attributes';
import { asObject, optionalInt, rejectUnknownFields } from './input';

const { flushRollups } = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '60 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

/** Web UI input: `{}` or `{ "maxEventsPerChunk": 50000, "settleMs": 2000 }`. */
export interface RollupFlushInput {
  maxEventsPerChunk?: number;
  settleMs?: number;
}

/**
 * `rollupFlush`: aggregates raw events stored since the watermark into the per-hunt
 * per-minute and per-hour rollups. Idempotent: the watermark lives in Postgres and moves
 * with the rows, so a second run (or a retry) only does what is left. A run goes no further
 * than the newest event stored at its start (or than its step's time budget), so it ends
 * under steady traffic; the next run takes what came after.
 */
export async function rollupFlush(input: RollupFlushInput = {}): Promise<FlushRollupsResult> {
  const fields = asObject('rollupFlush', input);
  rejectUnknownFields('rollupFlush', fields, ['maxEventsPerChunk', 'settleMs']);
  const maxEventsPerChunk = optionalInt('rollupFlush', fields, 'maxEventsPerChunk', 1, 1_000_000, 50_000);
  const settleMs = optionalInt('rollupFlush', fields, 'settleMs', 0, 600_000, 2000);
  upsertSearchAttributes([{ key: HUNT_JOB_KIND, value: 'rollupFlush' }]);
  upsertMemo({ description: 'Aggregates raw events since the watermark into rollup_minute and rollup_hour' });
  return flushRollups({ maxEventsPerChunk, settleMs });
}
