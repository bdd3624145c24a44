import { patched, proxyActivities } from '@temporalio/workflow';
import type { Activities, DependencyReport } from '../src/worker/activities';
import { asObject, rejectUnknownFields } from './input';

const { checkDependencies } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 3 },
});

/** `healthCheck`: input `{}`. Runs one activity on the worker; says what the worker can reach. */
export async function healthCheck(input: Record<string, never> = {}): Promise<DependencyReport & { checkedBy: string }> {
  // It takes nothing: "x" or {"foo": 1} is a mistake to say, not to ignore. patched(): a run
  // started before the check replays as it was made.
  if (patched('health-check-input')) rejectUnknownFields('healthCheck', asObject('healthCheck', input), []);
  const report = await checkDependencies();
  return { ...report, checkedBy: 'hunt-batch worker' };
}
